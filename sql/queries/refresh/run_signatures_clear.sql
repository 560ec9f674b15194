DELETE FROM meta.run_signatures
