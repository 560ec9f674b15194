"""The user errors of safeaudit: what a user, their files or their machine can cause.

The CLI prints any of these as one line and exits 2 (``pipelines.cli``); anything else is a bug and keeps
its traceback. Each message names what to look at: the file (and row or key), the run, the lock holder.

Errors are raised where the cause is known: a file is read or written (``pipelines.storage``), a spec is
validated (``pipelines.runspec``), a lock is taken (``pipelines.runlock``), a helper process dies
(``pipelines.runner``). :func:`os_error` turns an ``OSError`` at such a boundary into one line with its path.
"""

from __future__ import annotations

import errno


class SafeauditError(Exception):
    """Base of every error a user can cause; the message is one line naming the file, row, key or run."""


class ArtifactError(SafeauditError):
    """An artifact (plan, batch spec, manifest, parquet, image) is missing, unreadable or corrupt."""


class StorageError(SafeauditError):
    """The artifact store cannot be written: no space, no permission, read-only, not a folder."""


class RunLockedError(SafeauditError):
    """Another live process holds this run's lock."""


class HelperDiedError(SafeauditError):
    """The finishing helper process died (killed, out of memory); a re-run resumes."""


class DeviceError(SafeauditError):
    """The spec asks for a device this machine does not have."""


def os_error(exc: OSError, path: object | None = None, doing: str = "cannot read") -> str:
    """One line for an OSError at a file boundary: ``<path>: <doing> (<reason>)``."""
    where = path if path is not None else (exc.filename or "?")
    reason = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or str(exc)
    return f"{where}: {doing} ({reason})"
