-- attach_read_only: the probe of an existing file before the writer opens it ($1 = path); changes nothing on disk.
ATTACH $1 AS probe (READ_ONLY)
