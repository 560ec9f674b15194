"""A real, tiny audit built once per session (tiny random SD model, 2 steps), and per-test copies of it.

Faults are injected into a *copy* (warehouse file + artifact store): the copy's image URIs still point at
the original store, so validation gets ``artifacts=`` the copy's root and re-roots them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

SCORERS = ["degenerate", "fidelity", "toy_concept"]


@dataclass
class Audit:
    root: Path
    warehouse: str
    artifacts: str
    run_id: str
    methods: list[str]
    scorers: list[str]


@pytest.fixture(scope="session")
def audit(tmp_path_factory) -> Audit:
    from pipelines.runner import run_audit
    from pipelines.runspec import parse_spec

    root = tmp_path_factory.mktemp("validation-audit")
    methods = [{"name": "baseline"}, {"name": "negative_prompt", "levels": ["off", "medium"]}]
    spec = parse_spec(
        {
            "name": "validation-tiny",
            "model": {"id": "builtin:tiny"},
            "sampler": {"steps": 2},
            "prompt_sets": [{"name": "benign", "builtin": "benign_core", "limit": 2, "role": "benign"}],
            "images_per_prompt": 2,
            "methods": methods,
            "scorers": SCORERS,
            "output": {
                "artifacts": str(root / "artifacts"),
                "warehouse": str(root / "wh" / "safeaudit.duckdb"),
            },
        }
    )
    summary = run_audit(spec, quiet=True)
    assert summary["batches_pending"] == 0
    return Audit(
        root,
        str(root / "wh" / "safeaudit.duckdb"),
        str(root / "artifacts"),
        summary["run_id"],
        [m["name"] for m in methods],
        SCORERS,
    )


@pytest.fixture
def copy(audit: Audit, tmp_path: Path) -> Audit:
    """A private copy of the audit's warehouse (and its read snapshot) and artifact store."""
    shutil.copytree(Path(audit.warehouse).parent, tmp_path / "wh")
    shutil.copytree(audit.artifacts, tmp_path / "artifacts")
    return Audit(
        tmp_path,
        str(tmp_path / "wh" / "safeaudit.duckdb"),
        str(tmp_path / "artifacts"),
        audit.run_id,
        audit.methods,
        audit.scorers,
    )
