"""Processes against each other: concurrent writers of one artifact, two runs of one spec, a killed run's
helper, a dead helper (issue 15 items 9, 10 and the 'helper death' case of item 7). Real processes only.

On c1bbf7d: two writers of one image shared a temp name (writes failed, readers saw truncated files); a
second ``safeaudit run`` of a running spec ran in full; SIGKILL of ``safeaudit run`` left its helper alive;
the helper's death printed a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from tests.hostile.kit15b import REPO, alive, children, cli, env, one_line_error, tiny_spec

WRITER = """
import sys
from pipelines.storage import Store
store = Store(sys.argv[1])
data = bytes(range(256)) * 4096  # 1 MiB, the same bytes in both writers: the same image
errors = 0
for _ in range(int(sys.argv[2])):
    try:
        store.write_bytes(store.path("run", "batch", "images", "img.png"), data)
    except Exception as exc:
        errors += 1
print(errors)
"""
READER = """
import sys, time
path = sys.argv[1]
good = bytes(range(256)) * 4096
bad = reads = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        continue
    reads += 1
    bad += data != good
print(reads, bad)
"""


@pytest.mark.slow
def test_two_writers_of_one_artifact_never_collide(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), "150"],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    target = tmp_path / "run" / "batch" / "images" / "img.png"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(target), "4"],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    errors = [int(p.communicate(timeout=120)[0].strip() or -1) for p in procs]
    reads, bad = map(int, reader.communicate(timeout=60)[0].split())
    assert errors == [0, 0], [p.stderr for p in procs]
    assert reads > 0 and bad == 0, (reads, bad)
    assert not [p for p in target.parent.iterdir() if p.name != "img.png"]  # no temp file left


def _plan(spec) -> str:
    from pipelines.cli import app

    res = CliRunner().invoke(app, ["plan", str(spec)])
    assert res.exit_code == 0, res.output
    import json

    return json.loads(res.stdout.strip().splitlines()[-1])["run_id"]


HOLDER = """
import sys, time
from pipelines.runlock import run_lock
with run_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_second_run_of_a_spec_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    from pipelines.runlock import holder, lock_path

    spec = tiny_spec(tmp_path)
    run_id = _plan(spec)
    artifacts = str(tmp_path / "artifacts")
    first = subprocess.Popen(
        [sys.executable, "-c", HOLDER, artifacts, run_id],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "held"
        second = cli("run", str(spec), "--quiet")
        one_line_error(second, f"run {run_id} is already running", f"pid {first.pid}", ".run.lock")
        assert not list((tmp_path / "artifacts").rglob("*.png"))  # it stopped before generating
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert holder(lock_path(artifacts, run_id))["pid"] == first.pid  # a stale lock of a dead pid
    third = cli("run", str(spec), "--quiet")
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(list((tmp_path / "artifacts").rglob("*.png"))) == 2


def _slow_spec(tmp_path):
    """A run that keeps its helper busy for a while: 8 prompts, 1 per batch, 30 steps."""
    return tiny_spec(
        tmp_path,
        sampler={"scheduler": "ddim", "steps": 30},
        prompt_sets=[{"name": "core", "builtin": "benign_core", "limit": 8}],
        batch_size=1,
    )


def _start_and_find_helper(spec, timeout: float = 120) -> tuple[subprocess.Popen, int]:
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(spec), "--quiet"],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        helpers = [pid for pid, cmd in children(run.pid) if "spawn_main" in cmd]
        if helpers:
            return run, helpers[0]
        if run.poll() is not None:
            raise AssertionError(f"run ended before its helper started: {run.stderr.read()[-3000:]}")
        time.sleep(0.1)
    run.kill()
    raise AssertionError("no helper process appeared")


@pytest.mark.slow
def test_sigkill_of_the_run_takes_its_helper_down(tmp_path):
    run, helper_pid = _start_and_find_helper(_slow_spec(tmp_path))
    time.sleep(1.0)  # the helper is past its start-up, loading or finishing
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    deadline = time.monotonic() + 5
    while alive(helper_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not alive(helper_pid), "the helper outlived its SIGKILLed parent by 5 s"
    finally:
        if alive(helper_pid):
            os.kill(helper_pid, signal.SIGKILL)


@pytest.mark.slow
def test_death_of_the_helper_is_one_line(tmp_path):
    run, helper_pid = _start_and_find_helper(_slow_spec(tmp_path))
    os.kill(helper_pid, signal.SIGKILL)
    _, stderr = run.communicate(timeout=300)
    one_line_error(
        subprocess.CompletedProcess(run.args, run.returncode, "", stderr), "finishing process died", "re-run"
    )
