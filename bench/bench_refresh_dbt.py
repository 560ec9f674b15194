"""dbt-duckdb incremental models against the writer's refresh engine, side by side on the same copy.

    .venv/bin/python bench/bench_refresh_dbt.py --base /tmp/bench_wh/query.duckdb [--repeats 3]
    .venv/bin/python bench/bench_refresh_dbt.py --equal-only WAREHOUSE [WAREHOUSE ...]   # marts equal, no timing

``--base`` is the 10 M-row query warehouse ``bench/bench_warehouse.py --keep`` leaves in its ``--tmp`` folder.
Once: a copy of it gets dbt's models built in full into schema ``dbt`` (``dbt run --target build``, timed).
Each round: a fresh copy of that, one new run loaded (``--load-rows`` score rows with their generations, run
and prompts, the bench_warehouse load files, inserted as the loader does), then, in alternating order on the
same file, (a) ``pipelines.warehouse.refresh`` (the engine, on one connection, what ``writer()`` runs on exit)
and (b) ``dbt run --select config.materialized:incremental --target build`` as a process (what a DAG task
would run; its wall time includes dbt's start-up and parse, and dbt's own ``elapsed_time`` is reported too).
The engine writes ``main``, dbt writes ``dbt``: neither sees the other's tables. After the last round every
compared model must hold the same rows in both schemas (doubles rounded to 9 significant decimals).

``--equal-only`` builds dbt's models in full into a copy of each warehouse's snapshot and compares every model
(all 27) with the engine's objects; ``--compare all`` does that on the 10 M copy too (slow: the views compute
over 10 M rows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, markdown_table, write_json  # noqa: E402

from pipelines import dbt_project, dbt_run  # noqa: E402
from pipelines.warehouse import materialized, refresh, view_defs  # noqa: E402


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def dbt(args: list[str], path: Path) -> tuple[float, float, str]:
    """(wall s, dbt's elapsed_time, last line) of one dbt command on ``path`` (target build)."""
    env = dbt_run._env(SAFEAUDIT_DBT_PATH=path, SAFEAUDIT_DBT_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(dbt_run.dbt_executable()), *args, "--target", "build"],
        cwd=dbt_run.DBT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    results = json.loads((dbt_run.DBT_DIR / "target" / "run_results.json").read_text())
    return wall, float(results["elapsed_time"]), proc.stdout.strip().splitlines()[-1]


def insert_load(path: Path, files: dict[str, Path]) -> float:
    """The run's rows inserted the way pipelines/load.py does (one transaction, scores in key order)."""
    t0 = time.perf_counter()
    con = duckdb.connect(str(path))
    tables = {name: pq.read_table(p) for name, p in files.items()}
    con.begin()
    for name in ("runs", "run_prompts", "generations", "scores"):
        con.register("incoming", tables[name])
        order = " ORDER BY generation_id, scorer, scorer_version, metric" if name == "scores" else ""
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM incoming{order}")
        con.unregister("incoming")
    con.commit()
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - t0


def engine_refresh(path: Path) -> tuple[float, dict[str, float]]:
    con = duckdb.connect(str(path))
    try:
        t0 = time.perf_counter()
        changes = refresh(con)
        seconds = time.perf_counter() - t0
        assert not changes.full, f"the engine went full: {changes.reason}"
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return seconds, changes.seconds


def _select(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> str:
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    # doubles to 10 significant digits: sums over 100 k rows differ in the last bits with the summation order
    sig = (
        'CASE WHEN "{c}" = 0 OR NOT isfinite("{c}") THEN "{c}" '
        'ELSE round("{c}", 9 - CAST(floor(log10(abs("{c}"))) AS INTEGER)) END AS "{c}"'
    )
    exprs = [sig.format(c=c) if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols]
    return f"SELECT {', '.join(exprs)} FROM {schema}.{name}"


def compare(path: Path, names: list[str]) -> list[dict[str, Any]]:
    """Rows of each model in ``main`` (the engine's) and ``dbt`` (dbt's), and the rows only one side has."""
    con = duckdb.connect(str(path), read_only=True)
    out = []
    try:
        for name in names:
            a, b = _select(con, "main", name), _select(con, "dbt", name)
            n_main = con.execute(f"SELECT count(*) FROM main.{name}").fetchall()[0][0]
            n_dbt = con.execute(f"SELECT count(*) FROM dbt.{name}").fetchall()[0][0]
            only_main = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall()[0][0]
            only_dbt = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchall()[0][0]
            differ = []
            if only_main or only_dbt:
                for col in [r[0] for r in con.execute(f"DESCRIBE main.{name}").fetchall()]:
                    q = f'SELECT count(*) FROM (SELECT "{col}" FROM ({a}) EXCEPT ALL SELECT "{col}" FROM ({b}))'
                    if con.execute(q).fetchall()[0][0]:
                        differ.append(col)
            out.append(
                {
                    "model": name,
                    "columns_differ": ", ".join(differ) or "-",
                    "rows_engine": n_main,
                    "rows_dbt": n_dbt,
                    "only_engine": only_main,
                    "only_dbt": only_dbt,
                    "identical": only_main == only_dbt == 0 and n_main == n_dbt,
                }
            )
    finally:
        con.close()
    return out


def equal_only(warehouses: list[Path], tmp: Path) -> list[dict[str, Any]]:
    names = [d.name for d in view_defs()]
    rows = []
    for wh in warehouses:
        copy = tmp / f"{wh.stem}.dbt_copy.duckdb"
        t0 = time.perf_counter()
        dbt_run.build_copy(wh, copy, args=("run",))
        build_s = time.perf_counter() - t0
        res = compare(copy, names)
        bad = [r for r in res if not r["identical"]]
        rows.append(
            {
                "warehouse": str(wh),
                "models": len(res),
                "rows_compared": sum(r["rows_engine"] for r in res),
                "identical": len(res) - len(bad),
                "differ": ", ".join(r["model"] for r in bad) or "-",
                "dbt_run_s": round(build_s, 1),
            }
        )
        copy.unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="the 10 M-row query warehouse (bench_warehouse.py --keep)")
    ap.add_argument("--load-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/bench_refresh_dbt"))
    ap.add_argument("--compare", choices=["materialized", "all"], default="materialized")
    ap.add_argument("--equal-only", type=Path, nargs="+", help="only compare marts on these warehouses")
    ap.add_argument(
        "--reuse-dbt-build", action="store_true", help="keep the dbt full build of an earlier call"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.tmp.mkdir(parents=True, exist_ok=True)
    dbt_project.write()
    results: dict[str, Any] = {"machine": machine_info({"duckdb": duckdb.__version__})}
    print(f"# bench_refresh_dbt  {results['machine']}\n")
    if args.equal_only:
        results["equal"] = equal_only(args.equal_only, args.tmp)
        print(markdown_table(results["equal"]) + "\n")
        write_json(args.json, results)
        return results
    if args.base is None:
        ap.error("--base or --equal-only")
    import bench_warehouse

    files, n_rows = bench_warehouse.write_load_files(args.tmp, args.load_rows, first_run=1000)
    base_dbt = args.tmp / "base_dbt.duckdb"
    t0 = time.perf_counter()
    if args.reuse_dbt_build and base_dbt.exists():  # the full build of an earlier call (minutes): kept
        copy_s, full_wall, full_elapsed, line = 0.0, float("nan"), float("nan"), "reused"
    else:
        shutil.copyfile(args.base, base_dbt)
        copy_s = time.perf_counter() - t0
        full_wall, full_elapsed, line = dbt(["run"], base_dbt)
        _fsync(base_dbt)
    results["dbt_full_build"] = {
        "wall_s": full_wall,
        "dbt_elapsed_s": full_elapsed,
        "copy_s": copy_s,
        "line": line,
    }
    print(
        f"dbt full build on the 10 M copy: {full_wall:.1f} s wall ({full_elapsed:.1f} s dbt elapsed): {line}\n"
    )
    # dbt's start-up alone: a run that selects nothing
    idle_wall, idle_elapsed, _ = dbt(["run", "--select", "config.materialized:nothing_matches"], base_dbt)
    results["dbt_idle"] = {"wall_s": idle_wall, "dbt_elapsed_s": idle_elapsed}

    rounds = []
    round_path = args.tmp / "round.duckdb"
    for r in range(args.repeats):
        shutil.copyfile(base_dbt, round_path)
        _fsync(round_path)
        insert_s = insert_load(round_path, files)
        row: dict[str, Any] = {"round": r + 1, "insert_s": insert_s}
        order = ("engine", "dbt") if r % 2 == 0 else ("dbt", "engine")
        for side in order:
            if side == "engine":
                row["engine_s"], steps = engine_refresh(round_path)
                row["engine_steps"] = steps
            else:
                row["dbt_wall_s"], row["dbt_elapsed_s"], _ = dbt(
                    ["run", "--select", "config.materialized:incremental"], round_path
                )
        row["order"] = "/".join(order)
        row["ratio_wall"] = row["dbt_wall_s"] / row["engine_s"]
        row["ratio_elapsed"] = row["dbt_elapsed_s"] / row["engine_s"]
        rounds.append(row)
        print(
            f"round {r + 1} ({row['order']}): engine {row['engine_s']:.2f} s, dbt {row['dbt_wall_s']:.2f} s wall "
            f"({row['dbt_elapsed_s']:.2f} s dbt elapsed): ratio {row['ratio_wall']:.2f} ({row['ratio_elapsed']:.2f})"
        )
    names = [d.name for d in (materialized() if args.compare == "materialized" else view_defs())]
    results["equal"] = compare(round_path, names)
    results["rounds"] = rounds
    med = {k: float(np.median([x[k] for x in rounds])) for k in ("engine_s", "dbt_wall_s", "dbt_elapsed_s")}
    results["median"] = med | {
        "ratio_wall": med["dbt_wall_s"] / med["engine_s"],
        "ratio_elapsed": med["dbt_elapsed_s"] / med["engine_s"],
        "dbt_idle_wall_s": idle_wall,
        "load_rows": n_rows,
    }
    print("\n## refresh after a 1 M-row load into the 10 M warehouse (median of rounds)\n")
    print(markdown_table([results["median"]]) + "\n")
    print("## marts: engine (main) vs dbt (dbt), after the incremental refresh of the last round\n")
    print(markdown_table(results["equal"]) + "\n")
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.json, results)
    round_path.unlink(missing_ok=True)
    return results


if __name__ == "__main__":
    main()
