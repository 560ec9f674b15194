"""Validate a loaded run: the versioned suites in ``pipelines/expectations`` through Great Expectations.

    reader(snapshot) ─SQL─▶ frames ─GE (ephemeral context, pandas)─▶ results ─writer─▶ validations, runs.status

Great Expectations has no working DuckDB datasource here, so DuckDB does the heavy lifting (counts, joins,
per-generation aggregates of the score rows) and GE validates the resulting DataFrames. Every result row is
stored in ``validations`` (run, suite, suite version, expectation, success, observed value, unexpected
count, details incl. the suite parameters and failing ids), and the run becomes ``validated`` or, on any
failure, ``quarantined``. Reads use the read snapshot; the one write goes through ``warehouse.writer``,
which publishes a new snapshot.

``validate_run`` is the Airflow task's entry point (small dict back; the task raises on failure);
``safeaudit validate RUN_ID`` prints the table and exits 1 when anything failed.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

import typer  # at module level: the command's Annotated hints are evaluated against these globals

from pipelines.expectations import Params, Result, Suite, suites
from pipelines.queries import query

STATUS_OK, STATUS_FAILED = "validated", "quarantined"


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _plain(value: Any) -> Any:
    """JSON-safe copies of GE's numpy-laden result values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _to_result(suite: Suite, check, gx_result, frame_name: str, params: Params, extra: dict) -> Result:
    res = dict(gx_result.result or {})
    exc = gx_result.exception_info or {}
    raised = exc.get("raised_exception") if isinstance(exc, dict) else False
    unexpected = res.get("unexpected_count")
    if "observed_value" in res:
        observed = str(_plain(res["observed_value"]))
    elif unexpected is not None:
        observed = f"{unexpected} of {res.get('element_count')} unexpected"
    else:
        observed = None
    details = {
        "doc": check.doc,
        "frame": frame_name,
        "gx_type": gx_result.expectation_config.type,
        "gx_kwargs": {k: v for k, v in gx_result.expectation_config.kwargs.items() if k not in ("batch_id",)},
        "params": params.as_dict(),
        **extra,
    }
    if res.get("partial_unexpected_index_list"):
        details["unexpected"] = res["partial_unexpected_index_list"]
    elif res.get("partial_unexpected_list"):
        details["unexpected"] = res["partial_unexpected_list"]
    if raised:
        details["exception"] = str(exc.get("exception_message"))
    return Result(
        suite=suite.name,
        suite_version=suite.version,
        expectation=check.name,
        success=bool(gx_result.success) and not raised,
        observed_value=observed if not raised else f"error: {exc.get('exception_message')}",
        unexpected_count=None if unexpected is None else int(unexpected),
        details=_plain(details),
    )


def run_suites(frames, suite_list: tuple[Suite, ...] | None = None) -> list[Result]:
    """Validate every check of every suite on its frame; one GE validation per (suite, frame)."""
    from pipelines.expectations.frames import INDEX

    context = _gx_context()
    source = context.data_sources.add_pandas("safeaudit")
    batch_defs: dict[str, Any] = {}
    results: list[Result] = []
    for suite in suite_list or suites():
        order = {c.name: i for i, c in enumerate(suite.checks)}
        done: list[Result] = []
        by_frame: dict[str, list] = {}
        for check in suite.checks:
            reason = check.skip(frames) if check.skip else None
            if reason:
                done.append(
                    Result(
                        suite.name,
                        suite.version,
                        check.name,
                        True,
                        f"skipped: {reason}",
                        None,
                        {"doc": check.doc, "skipped": reason},
                        skipped=True,
                    )
                )
            else:
                by_frame.setdefault(check.frame, []).append(check)
        for frame_name, checks in by_frame.items():
            df = frames.get(frame_name)
            if frame_name not in batch_defs:
                asset = source.add_dataframe_asset(frame_name)
                batch_defs[frame_name] = asset.add_batch_definition_whole_dataframe("all")
            import great_expectations as gx

            gx_suite = gx.ExpectationSuite(
                name=f"{suite.name}.{frame_name}", meta={"suite_version": suite.version}
            )
            for check in checks:
                exp = check.expectation(frames.params)
                exp.meta = {"name": check.name}
                gx_suite.add_expectation(exp)
            index = [c for c in INDEX[frame_name] if c in df.columns]
            batch = batch_defs[frame_name].get_batch(batch_parameters={"dataframe": df})
            validation = batch.validate(
                gx_suite,
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": index,
                    "partial_unexpected_count": 20,
                },
            )
            by_name = {r.expectation_config.meta["name"]: r for r in validation.results}
            for check in checks:
                extra = {"rows": len(df)}
                if check.name.startswith("image_"):
                    extra["images"] = frames.image_stats
                done.append(_to_result(suite, check, by_name[check.name], frame_name, frames.params, extra))
        results += sorted(done, key=lambda r: order[r.expectation])
    return results


def store_results(warehouse: str, run_id: str, results: list[Result]) -> str:
    """Append the results to ``validations`` and set the run's status, in one transaction."""
    from pipelines.warehouse import now, writer

    status = STATUS_OK if all(r.success for r in results) else STATUS_FAILED
    at = now()
    rows = [
        (
            run_id,
            r.suite,
            r.suite_version,
            r.expectation,
            r.success,
            r.observed_value,
            r.unexpected_count,
            json.dumps(r.details | ({"skipped": True} if r.skipped else {}), sort_keys=True, default=str),
            at,
        )
        for r in results
    ]
    with writer(warehouse) as con:
        con.begin()
        try:
            con.executemany(query("validation/insert_result"), rows)
            con.execute(query("validation/set_status"), [status, run_id])
            con.commit()
        except Exception:
            con.rollback()
            raise
    return status


def run_validation(
    warehouse: str,
    run_id: str,
    artifacts: str | None = None,
    params: Params | None = None,
    write: bool = True,
) -> tuple[dict[str, Any], list[Result]]:
    """(summary, per-expectation results); writes them and the run's status unless ``write`` is False."""
    from pipelines.expectations.frames import Frames
    from pipelines.warehouse import reader

    started = time.perf_counter()
    params = params or Params()
    con = reader(warehouse)
    try:
        frames = Frames(con, run_id, params, artifacts)
        t0 = time.perf_counter()
        results = run_suites(frames)
        suites_s = time.perf_counter() - t0
        n_generations = int(frames.get("run")["n_generations"].iloc[0])
    finally:
        con.close()
    failed = [r.expectation for r in results if not r.success]
    t0 = time.perf_counter()
    status = store_results(warehouse, run_id, results) if write else (STATUS_FAILED if failed else STATUS_OK)
    timings = {
        "frames_s": frames.timings,
        "images_s": frames.image_stats.get("wall_s"),
        "gx_s": round(suites_s - sum(frames.timings.values()), 3),
        "store_s": round(time.perf_counter() - t0, 3),
    }
    summary = {
        "run_id": run_id,
        "success": not failed,
        "status": status,
        "failed": failed,
        "skipped": [r.expectation for r in results if r.skipped],
        "n_expectations": len(results),
        "n_failed": len(failed),
        "n_generations": n_generations,
        "suites": {s.name: s.version for s in suites()},
        "wall_s": round(time.perf_counter() - started, 3),
        "timings": timings,
    }
    return summary, results


def validate_run(warehouse: str, run_id: str, artifacts: str | None = None, **params: Any) -> dict[str, Any]:
    """Validate one run, store the results, set ``runs.status``; a small dict (safe for XCom).

    ``params`` are ``expectations.Params`` fields (e.g. ``max_black_share=0.2``, ``sample=1000``).
    """
    summary, _ = run_validation(warehouse, run_id, artifacts, Params(**params))
    return summary


def first_unexpected(result: Result, width: int = 100) -> str:
    """The first failing row of a failed expectation, as ``column=value, ...`` (for tables and logs)."""
    rows = (result.details or {}).get("unexpected") or []
    if result.success or not rows:
        return ""
    first = rows[0]
    text = ", ".join(f"{k}={v}" for k, v in first.items()) if isinstance(first, dict) else str(first)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- CLI -----------------------------------------------------------------------------------------------------
def register(app) -> None:
    @app.command("validate")
    def validate_cmd(
        run_id: Annotated[str, typer.Argument(help="run id (see `safeaudit runs`)")],
        warehouse: Annotated[str, typer.Option(help="warehouse file")] = "warehouse/safeaudit.duckdb",
        artifacts: Annotated[
            str | None, typer.Option(help="artifact root, when images moved since the run")
        ] = None,
        sample: Annotated[
            int | None, typer.Option(help="verify sha256 + decode of N sampled images (default all)")
        ] = None,
        no_images: Annotated[bool, typer.Option("--no-images", help="skip image file checks")] = False,
        max_black_share: Annotated[
            float, typer.Option(help="tolerated black frames per method x level")
        ] = 0.05,
        max_constant_share: Annotated[
            float, typer.Option(help="tolerated constant frames per method x level")
        ] = 0.05,
        rebuild_configs: Annotated[
            bool, typer.Option("--rebuild-configs", help="also rebuild each method point via models.registry")
        ] = False,
        show: Annotated[str, typer.Option(help="rows to print: all | failed")] = "all",
    ):
        """Run the data-quality suites on a loaded run; exit 1 (and quarantine the run) on any failure."""
        from pipelines.cli import _guard, console, print_table

        params = Params(
            max_black_share=max_black_share,
            max_constant_share=max_constant_share,
            check_images=not no_images,
            sample=sample,
            rebuild_configs=rebuild_configs,
        )
        summary, results = _guard(run_validation, warehouse, run_id, artifacts, params)
        rows = [
            (
                r.suite,
                r.suite_version,
                r.expectation,
                "skip" if r.skipped else ("[green]pass[/]" if r.success else "[bold red]FAIL[/]"),
                r.observed_value or "",
                "" if r.unexpected_count is None else r.unexpected_count,
                first_unexpected(r),
            )
            for r in results
            if show == "all" or not r.success
        ]
        print_table(
            rows,
            ["suite", "v", "expectation", "result", "observed", "unexpected", "first unexpected"],
            title=f"validate {run_id}",
        )
        if summary["success"]:
            console.print(
                f"[green]run {run_id} validated[/] ({summary['n_expectations']} expectations, "
                f"{summary['wall_s']} s)"
            )
            return
        console.print(
            f"[bold red]run {run_id} quarantined:[/] {summary['n_failed']} failed: "
            + ", ".join(summary["failed"]),
            soft_wrap=True,
        )
        raise typer.Exit(1)
