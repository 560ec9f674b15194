"""A full disk during a run: one line naming the file, exit 2, no temp file left (issue 15 item 7).

The disk is a real small tmpfs (``mount -t tmpfs -o size=...``): it needs root with CAP_SYS_ADMIN, and
the test is skipped with that reason where the machine does not allow it. On c1bbf7d a full disk during
generation printed a 40-150-line traceback from the helper process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.hostile.kit15b import cli, one_line_error, table_hashes, tiny_spec

pytestmark = pytest.mark.slow
PAGE = 4096


@contextmanager
def tmpfs(where: Path, size: int) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root + CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(mount: Path, leave: int) -> None:
    """Fill the filesystem, then give back ``leave`` bytes (rounded to pages)."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * PAGE)
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))


def _pages(path: Path) -> int:
    return -(-path.stat().st_size // PAGE) * PAGE


def test_full_disk_during_generation_is_one_line(tmp_path):
    with tmpfs(tmp_path / "small", 8 * 2**20) as mount:
        spec = tiny_spec(
            tmp_path,
            prompt_sets=[{"name": "core", "builtin": "benign_core", "limit": 8}],
            output={"artifacts": str(mount / "artifacts"), "warehouse": str(tmp_path / "wh.duckdb")},
        )
        planned = cli("plan", str(spec))
        assert planned.returncode == 0, planned.stderr
        largest = max(_pages(p) for p in (mount / "artifacts").rglob("*.json"))
        _fill(mount, leave=largest + PAGE)  # room to re-plan, not for eight images and their parquet
        result = cli("run", str(spec), "--quiet")
        line = one_line_error(result, "No space left on device", str(mount))
        assert "Traceback" not in result.stderr, line
        leftovers = [p for p in (mount / "artifacts").rglob("*") if ".tmp-" in p.name]
        assert leftovers == []  # the failed write removed its temp file
        assert not (tmp_path / "wh.duckdb").exists()  # nothing was loaded


def test_full_disk_during_load_or_publish_is_one_line(tmp_path):
    spec = tiny_spec(tmp_path)
    first = cli("run", str(spec), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    size = (tmp_path / "wh.duckdb").stat().st_size
    run_id = next(p.name for p in (tmp_path / "artifacts").iterdir() if p.name.startswith("hostile-"))
    # room for the main file but not for its snapshot copy beside it
    with tmpfs(tmp_path / "whfs", size + size // 2) as mount:
        result = cli(
            "load",
            run_id,
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--warehouse",
            str(mount / "wh.duckdb"),
        )
        one_line_error(result, "No space left on device")
    assert table_hashes(tmp_path / "wh.duckdb")  # the first warehouse is intact and readable
