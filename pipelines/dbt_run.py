"""Run the dbt project of ``sql/dbt`` with dbt's own virtualenv, under the warehouse's rules.

    python -m pipelines.dbt_run test  [--warehouse warehouse/safeaudit.duckdb]   # dbt test on the snapshot
    python -m pipelines.dbt_run docs  [--warehouse ...]                          # dbt docs generate (lineage)
    python -m pipelines.dbt_run build --copy /tmp/wh_dbt.duckdb [--warehouse ...] # dbt build into a copy

dbt lives in ``.venv-dbt`` (``make dbt-venv``; dbt-adapters needs protobuf < 7, the main lock pins 7), or at
``$SAFEAUDIT_DBT``. The single-writer rule holds: ``test`` and ``docs`` read the published read snapshot,
attached READ_ONLY to an in-memory database (target ``snapshot``), so they never open the main file and can
write nothing; ``build`` writes dbt's models into schema ``dbt`` of a **copy** of the snapshot, never the main
file. When dbt is not installed every entry point says so in one line (:class:`DbtMissing`) and the audit
goes on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.dbt_project import DBT_DIR, MODELS_DIR
from pipelines.dbt_project import write as write_models
from pipelines.warehouse import snapshot_path

ROOT = DBT_DIR.parent.parent
DBT_ENV = "SAFEAUDIT_DBT"
DEFAULT_DBT = ROOT / ".venv-dbt" / "bin" / "dbt"
DEFAULT_WAREHOUSE = "warehouse/safeaudit.duckdb"
PATH_VARS = ("SAFEAUDIT_DBT_PATH", "SAFEAUDIT_DBT_SNAPSHOT")  # read by sql/dbt/profiles.yml


class DbtMissing(RuntimeError):
    """dbt is not installed: the one line says how to install it."""


class DbtFailed(RuntimeError):
    """dbt ran and reported failures (the last lines of its output name them)."""


@dataclass
class DbtResult:
    command: str
    returncode: int
    output: str
    seconds: float


def dbt_executable() -> Path:
    exe = Path(os.environ.get(DBT_ENV) or DEFAULT_DBT)
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise DbtMissing(f"dbt not installed ({exe} missing): run `make dbt-venv` to create .venv-dbt")
    return exe


def _env(**paths: Path | str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",  # no network from this machine or CI
        DBT_VERSION_CHECK="false",
        DBT_PROFILES_DIR=str(DBT_DIR),
        DBT_PROJECT_DIR=str(DBT_DIR),
    )
    # the file paths absolute: dbt runs in sql/dbt
    env.update({k: str(Path(v).resolve()) if k in PATH_VARS else str(v) for k, v in paths.items()})
    return env


def run_dbt(args: list[str], env: dict[str, str], check: bool = True) -> DbtResult:
    exe = dbt_executable()
    if not MODELS_DIR.exists() or not any(MODELS_DIR.rglob("*.sql")):
        write_models()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(exe), *args], cwd=DBT_DIR, env=env, capture_output=True, text=True, check=False
    )
    result = DbtResult(
        " ".join(["dbt", *args]), proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0
    )
    if check and proc.returncode != 0:
        tail = [line for line in result.output.splitlines() if line.strip()][-12:]
        raise DbtFailed(f"{result.command} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return result


def _snapshot(warehouse: str | Path) -> Path:
    snap = snapshot_path(warehouse)
    if not snap.is_file():
        raise FileNotFoundError(f"{snap}: no read snapshot yet; run a load (safeaudit load) first")
    return snap


def snapshot_test(warehouse: str | Path = DEFAULT_WAREHOUSE, select: str | None = None) -> DbtResult:
    """``dbt test`` on the published read snapshot (attached READ_ONLY; the main file is never opened)."""
    dbt_executable()  # the missing install is the first thing to say
    args = ["test", "--target", "snapshot"] + (["--select", select] if select else [])
    return run_dbt(args, _env(SAFEAUDIT_DBT_SNAPSHOT=_snapshot(warehouse)))


def docs(warehouse: str | Path = DEFAULT_WAREHOUSE) -> Path:
    """``dbt docs generate`` against the snapshot: ``sql/dbt/target/static_index.html``, docs and lineage graph."""
    dbt_executable()
    env = _env(SAFEAUDIT_DBT_SNAPSHOT=_snapshot(warehouse))
    run_dbt(["docs", "generate", "--static", "--target", "snapshot"], env)
    # static_index.html embeds the manifest and catalog: it opens from disk, no `dbt docs serve` needed
    return DBT_DIR / (os.environ.get("DBT_TARGET_PATH") or "target") / "static_index.html"


def build_copy(
    warehouse: str | Path, copy: str | Path, args: tuple[str, ...] = ("build",), fresh: bool = True
) -> DbtResult:
    """dbt's models built into schema ``dbt`` of ``copy``, a copy of the read snapshot (never the main file).

    ``fresh`` copies the snapshot first; without it an existing copy is built on (an incremental run)."""
    copy = Path(copy)
    if copy.resolve() in {Path(warehouse).resolve(), snapshot_path(warehouse).resolve()}:
        raise ValueError(f"{copy}: dbt builds into a copy, not the warehouse or its snapshot")
    if fresh or not copy.exists():
        shutil.copyfile(_snapshot(warehouse), copy)
    return run_dbt([*args, "--target", "build"], _env(SAFEAUDIT_DBT_PATH=copy))


def dbt_test_line(warehouse: str | Path = DEFAULT_WAREHOUSE) -> str:
    """``dbt test`` on the snapshot, summed up in one line; :class:`DbtMissing` when dbt is not installed."""
    result = snapshot_test(warehouse)
    done = [line.split("Done.", 1)[1].strip() for line in result.output.splitlines() if "Done." in line]
    return (
        f"dbt test on {snapshot_path(warehouse)}: {done[-1] if done else 'passed'} ({result.seconds:.1f} s)"
    )


def dbt_test_task(warehouse: str | Path = DEFAULT_WAREHOUSE) -> str:
    """:func:`dbt_test_line`, or the one line saying it was skipped because dbt is not installed."""
    try:
        return dbt_test_line(warehouse)
    except DbtMissing as exc:
        return f"dbt test skipped: {exc}"


def warehouse_from_events(events: Any, asset: Any, default: str) -> str:
    """The warehouse the newest triggering load wrote (its asset event's ``extra``), else ``default`` (a
    manual trigger, or an event from a producer that does not say)."""
    try:
        seq = list(events[asset]) if events is not None else []
    except (KeyError, TypeError):
        seq = []
    for event in reversed(seq):
        path = (getattr(event, "extra", None) or {}).get("warehouse")
        if path:
            return str(path)
    return default


def dbt_test_for_dag(warehouse: str | Path) -> str:
    """The ``dbt_checks`` DAG's task: a failing test fails the task; without dbt the task is *skipped*
    (state skipped, the reason as its one line), never failed."""
    try:
        line = dbt_test_line(warehouse)
    except DbtMissing as exc:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"dbt test skipped: {exc}") from None
    print(line)
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["test", "docs", "build", "models"])
    ap.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)
    ap.add_argument("--copy", help="build: the copy to build into (made from the read snapshot)")
    args = ap.parse_args(argv)
    try:
        if args.command == "models":
            print(f"{len(write_models())} models written to {MODELS_DIR}")
        elif args.command == "test":
            print(dbt_test_task(args.warehouse))
        elif args.command == "docs":
            print(f"dbt docs with the lineage graph: {docs(args.warehouse)} (open it in a browser)")
        else:
            if not args.copy:
                ap.error("build needs --copy PATH (dbt never writes the main warehouse file)")
            print(build_copy(args.warehouse, args.copy).output.strip().splitlines()[-1])
    except (DbtMissing, DbtFailed, FileNotFoundError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 0 if isinstance(exc, DbtMissing) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
