"""Shared helpers of the hostile-input suite's run/spec cases (issue 15b): a tiny spec, the real CLI in a
subprocess, the one-line-exit-2 check, and table hashes of a warehouse."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[2]
SAFEAUDIT = [sys.executable, "-m", "pipelines.cli"]


def tiny_spec(tmp: Path, name: str = "spec.yaml", **extra: Any) -> Path:
    """The smallest real audit: builtin:tiny, 2 DDIM steps, 2 prompts x 1 image, baseline, no scorer."""
    spec: dict[str, Any] = {
        "name": "hostile",
        "model": {"id": "builtin:tiny"},
        "sampler": {"scheduler": "ddim", "steps": 2},
        "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 2}],
        "methods": [{"name": "baseline"}],
        "scorers": [],
        "batch_size": 2,
        "output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(tmp / "wh.duckdb")},
    }
    spec.update(extra)
    path = tmp / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "SAFEAUDIT_FAULT"}
    out.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), **extra)
    return out


def cli(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SAFEAUDIT, *args],
        cwd=kw.pop("cwd", REPO),
        env=kw.pop("env", env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def one_line_error(result: subprocess.CompletedProcess, *expect: str) -> str:
    """Assert exit 2 with exactly one non-empty stderr line, starting 'error:' and containing ``expect``."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("error:"), lines[0]
    for e in expect:
        assert e in lines[0], (e, lines[0])
    return lines[0]


def table_hashes(warehouse: Path) -> dict[str, str]:
    """A content hash of every base table (sorted rows), read-only: what 'the warehouse is unchanged' means."""
    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        out = {}
        for schema, name in names:
            rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
            out[f"{schema}.{name}"] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        return out
    finally:
        con.close()


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and state != "Z":
            out.append((int(entry.name), cmd))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
