"""``safeaudit``: the command line, assembled above every layer (models <- pipelines <- dashboards <- here).

The commands live with their layer: ``pipelines.cli.app`` (run, plan, audit, report, validate, ...) and
``dashboards.cli`` (``safeaudit dashboard``). This package only puts them under one name; it is the one place
that imports both, so neither layer imports the other to build the CLI. Every import here is explicit: a
command module that fails to import fails the CLI, loudly.
"""

from __future__ import annotations

import typer

from dashboards import cli as dashboards_cli
from pipelines import cli as pipelines_cli

dashboard_app = typer.Typer()
dashboards_cli.register(dashboard_app)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=pipelines_cli.__doc__)
app.add_typer(pipelines_cli.app)  # no name: their commands and groups join the top level
app.add_typer(dashboard_app)


def main() -> None:  # pragma: no cover
    app()
