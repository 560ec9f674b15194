"""``safeaudit dashboard``: serve the Streamlit dashboard on the loopback interface by default.

The command checks the warehouse exists, puts its path (and the artifacts root) in the environment the
app reads (``dashboards.connection``), and replaces itself with ``streamlit run dashboards/app.py`` in headless
mode, so stopping the process that was started stops the server (nothing is left behind).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

APP = Path(__file__).resolve().parent / "app.py"
ROOT = APP.parent.parent


def streamlit_command(port: int, host: str) -> list[str]:
    """The ``streamlit run`` argument list (headless, no telemetry, no file watching)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def dashboard_env(
    warehouse: str | Path, artifacts: str | Path, labels_dir: str | Path | None = None
) -> dict[str, str]:
    from dashboards.connection import ENV_ARTIFACTS, ENV_LABELS, ENV_WAREHOUSE

    env = dict(os.environ)
    env[ENV_WAREHOUSE] = str(Path(warehouse).expanduser().resolve())
    env[ENV_ARTIFACTS] = str(Path(artifacts).expanduser().resolve())
    if labels_dir is not None:
        env[ENV_LABELS] = str(Path(labels_dir).expanduser().resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def register(app: typer.Typer) -> None:
    """Add ``safeaudit dashboard`` to the CLI (called by safeaudit_cli)."""
    from pipelines.cli import DEFAULT_WAREHOUSE

    @app.command("dashboard")
    def dashboard(
        warehouse: Annotated[
            str, typer.Option(help="warehouse file (its read snapshot is read)")
        ] = DEFAULT_WAREHOUSE,
        port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8501,
        host: Annotated[
            str, typer.Option(help="address to bind (loopback unless you mean to share it)")
        ] = "127.0.0.1",
        artifacts: Annotated[
            str, typer.Option(help="artifact store root: full-size images are served only from below it")
        ] = "artifacts",
        labels_dir: Annotated[
            str | None,
            typer.Option(help="where reviewer labels are written [default: labels/ beside the warehouse]"),
        ] = None,
    ):
        """Start the reviewers' dashboard (Streamlit, headless) on the warehouse's read snapshot."""
        from pipelines.readonly import snapshot_of
        from pipelines.warehouse import WarehouseError

        path = Path(warehouse)
        try:
            snapshot_of(path)  # the dashboard reads only the snapshot: it never holds the loader's file
        except WarehouseError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        cmd = streamlit_command(port, host)
        typer.echo(f"dashboard: http://{host}:{port}  (warehouse {path.resolve()})")
        sys.stdout.flush()
        os.execve(sys.executable, cmd, dashboard_env(warehouse, artifacts, labels_dir))
