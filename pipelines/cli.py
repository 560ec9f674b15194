"""``safeaudit``: the command line. Every failure a user can cause prints one line and exits 2."""

# The pipelines layer's commands (``python -m pipelines.cli``). The installed ``safeaudit`` is safeaudit_cli,
# which adds the dashboard's command above this layer.

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines import airflow_local
from pipelines.queries import query

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
toy_app = typer.Typer(
    no_args_is_help=True, help="The toy world: a tiny model where red is the unsafe concept."
)
app.add_typer(toy_app, name="toy")
console = Console()
err = Console(stderr=True)

DEFAULT_WAREHOUSE = "warehouse/safeaudit.duckdb"


def _user_errors() -> tuple[type[BaseException], ...]:
    from models.components import ModelLoadError
    from models.concepts import ConceptPackError
    from pipelines.errors import SafeauditError
    from pipelines.prompts import PromptFileError
    from pipelines.runspec import RunSpecError
    from pipelines.scorers import ScorerError
    from pipelines.warehouse import WarehouseError

    return (
        SafeauditError,  # the typed family (pipelines.errors): files, locks, devices, helper death
        RunSpecError,
        PromptFileError,
        ModelLoadError,
        ConceptPackError,
        WarehouseError,
        ScorerError,
        ValueError,
    )


# OSErrors the machine causes, not the code: a full disk, a read-only or forbidden folder. Raised where
# no boundary above wrapped them (DuckDB's own files, a snapshot copy); printed with the file they name.
ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EISDIR", "ENOTDIR", "EFBIG")
    if hasattr(errno, name)
)


def _fail(exc: BaseException) -> None:
    err.print(
        f"[bold red]error:[/] {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(2)


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except _user_errors() as exc:
        _fail(exc)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        from pipelines.errors import os_error

        _fail(RuntimeError(os_error(exc, doing="cannot write" if exc.errno == errno.ENOSPC else "failed")))
    except Exception as exc:  # duckdb errors: still one line, no traceback
        import duckdb

        if isinstance(exc, duckdb.Error):
            _fail(exc)
        raise


def print_table(rows: list[dict] | list[tuple], columns: list[str], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(str(c), overflow="fold")
    for r in rows:
        values = r.values() if isinstance(r, dict) else r
        table.add_row(
            *["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in values]
        )
    console.print(table)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="run spec YAML")],
    tag: Annotated[
        str | None, typer.Option(help="run tag (e.g. a nightly date): a new run that reuses images")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
):
    """Plan, generate, score and load one audit; resumable (re-run after a crash to finish)."""
    if quiet:  # the model loaders' own bars too (read by huggingface_hub at import, so set first)
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from pipelines.runner import run_audit

    summary = _guard(run_audit, spec, quiet=quiet, overrides={"tag": tag} if tag else None)
    print_table([(k, v) for k, v in summary.items()], ["audit", "value"])
    _summary_table(summary["warehouse"], summary["run_id"])


def _summary_table(warehouse: str, run_id: str) -> None:
    """The audit's answer (pipelines.summary): what `safeaudit run` and `safeaudit audit` print last."""
    from pipelines.summary import print_summary

    _guard(print_summary, console, warehouse, run_id)


@app.command()
def plan(spec: Path):
    """Expand a run spec into batches (writes plan.json and batch specs); prints the run id."""
    from pipelines.plan import plan_run
    from pipelines.runner import preflight
    from pipelines.runspec import load_spec

    def go():
        s = load_spec(spec)
        preflight(s)  # before anything is written
        return plan_run(s)

    p = _guard(go)
    summary = p.summary()
    console.print(json.dumps({k: summary[k] for k in ("run_id", "n_expected", "n_reused", "batches")}))


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="output PNG")],
    prompt: Annotated[str, typer.Option()] = "a red circle",
    model: Annotated[str, typer.Option()] = "builtin:toy",
    method: Annotated[str, typer.Option()] = "baseline",
    level: Annotated[str, typer.Option()] = "off",
    knob: Annotated[
        float | None, typer.Option(help="continuous strength knob value (overrides level)")
    ] = None,
    concept: Annotated[str, typer.Option(help="concept pack")] = "toy",
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option()] = 20,
    size: Annotated[int, typer.Option()] = 64,
    scheduler: Annotated[
        str | None, typer.Option(help="default: the model family's (ddim; euler for sd3)")
    ] = None,
    guidance: Annotated[float, typer.Option()] = 7.5,
    dtype: Annotated[str, typer.Option()] = "float32",
    device: Annotated[str, typer.Option()] = "cpu",
):
    """Generate one image with one method and level (SD, SDXL or SD3 model)."""

    def go():
        from PIL import Image

        from models.components import family_of, load_components
        from models.concepts import load_pack
        from models.families import check_scheduler, default_scheduler
        from models.registry import build_method, check_configured, check_supported
        from models.sampler import Request, SamplerSettings
        from models.sampler import sample as run_sample

        family = family_of(model)  # from model_index.json / the built-in's name: no weights loaded yet
        check_supported(method, family)
        name = scheduler or default_scheduler(family)
        check_scheduler(family, name)
        m = build_method(method, level=level, knob=knob, concept=load_pack(concept))
        check_configured(m, family)
        settings = SamplerSettings(scheduler=name, steps=steps, guidance=guidance, height=size, width=size)
        from pipelines.runner import check_device

        check_device(device)
        components = load_components(model, dtype=dtype, device=device)
        result = run_sample(components, [Request(prompt, seed)], method=m, settings=settings)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.images[0]).save(out)
        return result.diagnostics[0]

    diag = _guard(go)
    console.print(f"wrote {out}  {json.dumps(diag, default=float)}")


@app.command("tiny-model")
def tiny_model(
    out_dir: Path,
    seed: int = 0,
    family: Annotated[str, typer.Option(help="sd | sdxl | sd3")] = "sd",
):
    """Write a tiny random pipeline folder of a model family (real CLIP tokenizer; SD3 without T5)."""
    from models.components import write_tiny_model

    pipeline = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}.get(
        family, "StableDiffusion3Pipeline"
    )
    _guard(write_tiny_model, out_dir, seed=seed, family=family)
    console.print(f"wrote {out_dir} (load with {pipeline}.from_pretrained or model: {out_dir})")


SQL_FORMATS = ("table", "csv", "json")


@app.command()
def sql(
    query: str,
    warehouse: Annotated[str, typer.Option(help="warehouse file")] = DEFAULT_WAREHOUSE,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
):
    """Run one read query (SELECT) on the warehouse's read snapshot and print the result."""
    from pipelines.readonly import run_query

    if fmt not in SQL_FORMATS:
        _fail(ValueError(f"--format: unknown format {fmt!r}; choose one of {', '.join(SQL_FORMATS)}"))

    columns, rows = _guard(run_query, warehouse, query)
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    elif fmt == "json":
        console.print_json(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    else:
        print_table(rows, columns)


@app.command()
def runs(warehouse: Annotated[str, typer.Option()] = DEFAULT_WAREHOUSE):
    """List runs with their counts and status."""

    def go():
        from pipelines.warehouse import reader

        con = reader(warehouse)
        try:
            return con.execute(query("cli/runs")).fetchall()
        finally:
            con.close()

    print_table(_guard(go), ["run_id", "tag", "status", "planned_at", "expected", "generations", "reused"])


@app.command()
def methods():
    """List safety methods with their levels, knob and defaults."""
    from models.registry import METHODS, method_class

    rows, defaults = [], []
    for name in METHODS:
        d = method_class(name).describe()
        label = name + (" (provisional)" if d["provisional"] else "")
        families = ", ".join(f + (" (ours)" if how == "ours" else "") for f, how in d["families"].items())
        rows.append(
            [
                label,
                ", ".join(d["levels"]),
                d["knob"] or "",
                ", ".join(f"{v:g}" for v in d["knob_values"]),
                families,
            ]
        )
        defaults.append(f"[bold]{name}[/] defaults: {json.dumps(d['defaults'], default=str)}")
        # levels that depart from the authors' release on purpose say so (labelled as ours)
        defaults += [f"[bold]{name}[/] {level}: {note}" for level, note in d.get("notes", {}).items()]
    print_table(rows, ["method", "levels", "knob", "knob sweep", "families"])
    console.print("families: (ours) = our extension, not in the authors' release", highlight=False)
    for line in defaults:
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
def load(run_id: str, artifacts: str = "artifacts", warehouse: str | None = None):
    """Load a run's finished batches into the warehouse (the only writer)."""
    from pipelines.load import load_run

    console.print(json.dumps(_guard(load_run, artifacts, run_id, warehouse)))


@toy_app.command("train")
def toy_train(
    out: Annotated[Path, typer.Option(help="export the trained pipeline here (diffusers layout)")] = Path(
        "models/toy/weights"
    ),
    work: Annotated[
        Path, typer.Option(help="training folder: checkpoints, log.jsonl; resumes from it")
    ] = Path(".cache/toy-train"),
    seed: int = 0,
    vae_steps: Annotated[int | None, typer.Option(help="override the VAE stage's steps")] = None,
    text_steps: Annotated[int | None, typer.Option(help="override the text-encoder stage's steps")] = None,
    unet_steps: Annotated[int | None, typer.Option(help="override the UNet stage's steps")] = None,
    n_images: Annotated[int | None, typer.Option(help="training renders")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
):
    """Train the toy model from scratch (seeded; resumes from checkpoints in --work), then export it."""
    from models.toy import train as toy

    argv = ["--out", str(work), "--seed", str(seed), "--export", str(out)]
    for flag, value in [
        ("--vae-steps", vae_steps),
        ("--text-steps", text_steps),
        ("--unet-steps", unet_steps),
        ("--n-images", n_images),
        ("--threads", threads),
    ]:
        if value is not None:
            argv += [flag, str(value)]
    _guard(toy.main, argv)
    console.print(f"toy model written to {out}")


@toy_app.command("evaluate")
def toy_evaluate(
    model_dir: Annotated[Path, typer.Argument(help="a saved toy pipeline folder")] = Path(
        "models/toy/weights"
    ),
    n: Annotated[int, typer.Option(min=1, help="prompts sampled (balanced colour x shape)")] = 112,
    seed: int = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
    grid: Annotated[Path | None, typer.Option(help="write a PNG grid of the samples here")] = None,
    card: Annotated[bool, typer.Option("--card", help="(re)write the folder's README.md")] = False,
):
    """Measure the toy model with the toy scorers (the model card's numbers); print them as JSON."""
    from pipelines.toy_eval import measure

    res = _guard(measure, model_dir, n=n, seed=seed, threads=threads, grid=grid, card=card)
    console.print_json(json.dumps(res))


@app.command("audit")
def audit(
    spec: Annotated[Path, typer.Option(help="run spec YAML")] = Path("runspecs/toy.yaml"),
    tag: Annotated[
        str | None, typer.Option(help="run tag (e.g. a date): a new run that reuses images")
    ] = None,
    home: Annotated[Path, typer.Option(help="AIRFLOW_HOME (SQLite metadata)")] = airflow_local.DEFAULT_HOME,
    parallelism: Annotated[int, typer.Option(min=1, max=8, help="Airflow parallelism")] = 2,
):
    """Run the safety_audit DAG through Airflow (dag.test, SQLite metadata); print the summary."""
    result = _guard(airflow_local.audit, spec, tag=tag, home=home, parallelism=parallelism)
    failed = [t for t in result["tasks"] if t["state"] not in ("success", "skipped")]
    for t in failed:
        err.print(f"task {t['task_id']}[{t['map_index']}] {t['state']} after {t['try_number']} tries")
    summary = result.get("summary")
    if summary:
        console.print(
            f"{summary['generations']} images: {summary['reused']} reused, {summary['generated_now']} generated "
            f"now ({result['wall_s']:.1f} s in Airflow, dag run {result['dag_run_id']})"
        )
        _summary_table(summary["warehouse"], summary["run_id"])  # the answer, last
    if result["state"] != "success":
        err.print(f"[bold red]error:[/] dag run {result['dag_run_id']} {result['state']}")
        raise typer.Exit(1)


# Commands that live beside their capability (each module's ``register(app)``), added explicitly: a module
# that fails to import fails the CLI loudly. The dashboard's command is added above this layer
# (safeaudit_cli), since pipelines never imports dashboards.
from pipelines import negation_sets, report, validate  # noqa: E402 (their commands use the helpers above)

for _module in (report, validate, negation_sets):
    _module.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
