"""One ``safeaudit run`` per run at a time: a lock file under ``artifacts/<run_id>/``.

Two runs of one spec would both do all the generation and one would then fail on the warehouse's lock.
The lock is ``fcntl.flock`` on ``<artifacts>/<run_id>/.run.lock``, which holds the holder's pid, host and
start time. The kernel drops a flock when its process dies (SIGKILL included), so a lock left by a dead
process is simply taken over: nothing to sweep, no pid-reuse guesswork. A second run while the holder
lives fails at once with :class:`RunLockedError` naming the holder.

Scope: local (POSIX) artifact folders. On an fsspec URL (``s3://``) there is no lock; the Airflow path
serialises a run's tasks itself (one DAG run per run id).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import RunLockedError, StorageError, os_error
from pipelines.storage import Store

LOCK_NAME = ".run.lock"


def lock_path(artifacts: str, run_id: str) -> Path | None:
    store = Store(artifacts)
    return Path(store.path(run_id, LOCK_NAME)) if store.local else None


def holder(path: Path) -> dict:
    """What the lock file says about its holder ({} when unreadable or empty)."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def run_lock(artifacts: str, run_id: str) -> Iterator[Path | None]:
    """Hold the run's lock for the body; raise :class:`RunLockedError` when a live process holds it."""
    import fcntl

    path = lock_path(artifacts, run_id)
    if path is None:
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(os_error(exc, path, "cannot create run lock")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = holder(path)
            who = f"pid {h.get('pid', '?')} on {h.get('host', '?')} since {h.get('started', '?')}"
            raise RunLockedError(
                f"run {run_id} is already running ({who}; lock {path}): wait for it to finish"
            ) from None
        # ours now (a previous holder, if any, is dead: the kernel released its lock)
        me = {"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released below; an empty file is a free lock
    finally:
        os.close(fd)  # closing drops the flock
