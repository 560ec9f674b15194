"""``safeaudit audit`` (what ``make audit`` runs): the DAG through Airflow in a child process, then the summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_audit_command_runs_the_dag_and_prints_reuse(tmp_path, migrated_home, tiny_conf):
    home = migrated_home(tmp_path / "airflow_home")
    conf = tiny_conf(tmp_path)
    spec = yaml.safe_load(Path(conf["spec"]).read_text()) | conf["overrides"]
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # the command sets its own
    env["COLUMNS"] = "80"  # the answer must fit an 80-column terminal
    cmd = [
        str(Path(sys.executable).parent / "safeaudit"),
        "audit",
        "--spec",
        str(spec_path),
        "--home",
        str(home),
    ]
    first = subprocess.run([*cmd, "--tag", "a"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "4 images: 0 reused, 4 generated now" in first.stdout, first.stdout[-2000:]
    # the answer comes last: the compact table, then run id, warehouse and the dashboard command
    answer = first.stdout[first.stdout.index("4 images: 0 reused") :].splitlines()[1:]
    # a path longer than the terminal folds (no spaces in it): joined, the lines hold it whole
    assert f"warehouse: {spec['output']['warehouse']}" in "".join(answer)
    assert all(len(line) <= 80 for line in answer), "\n".join(answer)
    header = next(line for line in answer if "method · level" in line)
    for column in ("unsafe rate [95% CI]", "over-cens.", "acted", "front"):
        assert column in header
    assert any(line.startswith("run: tiny-") for line in answer)
    after = answer[answer.index("open the dashboard with:") + 1 :]
    assert "safeaudit dashboard" in after[0] and len(after) <= 3  # a long path folds
    assert sum(line.strip().startswith(("baseline", "safree")) for line in answer) == 2
    second = subprocess.run([*cmd, "--tag", "b"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "4 images: 4 reused, 0 generated now" in second.stdout, second.stdout[-2000:]
    assert (home / ".safeaudit-migrated").exists()
