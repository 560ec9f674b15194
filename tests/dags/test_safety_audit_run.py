"""``dag.test()`` of safety_audit on the tiny spec: exact warehouse rows, incremental reuse, retried failure.

The tiny spec plans 2 prompts x 1 image x 2 method points (baseline/off, safree/strong) = 4 generations
in 2 batches. Runs happen in this process (dag.test), so diffusers is imported once for all of them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines import airflow_local

pytestmark = pytest.mark.slow

N_EXPECTED, N_BATCHES = 4, 2


def _run(conf: dict) -> dict:
    started = time.perf_counter()
    result = airflow_local.run_dag_test(conf)
    print(f"dag.test {conf['tag']}: {time.perf_counter() - started:.1f} s, state {result['state']}")
    return result


def _warehouse(conf: dict, sql: str, params: list) -> list[tuple]:
    from pipelines.warehouse import reader

    con = reader(conf["overrides"]["output"]["warehouse"])
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _by_task(result: dict, task_id: str) -> list[dict]:
    return sorted((t for t in result["tasks"] if t["task_id"] == task_id), key=lambda t: t["map_index"])


@pytest.fixture(scope="module")
def nightly(airflow_home, tiny_conf, tmp_path_factory):
    """Two nightly runs of the same spec into one warehouse: tags 2026-01-01 then 2026-01-02."""
    out = tmp_path_factory.mktemp("nightly")
    first_conf, second_conf = tiny_conf(out, tag="2026-01-01"), tiny_conf(out, tag="2026-01-02")
    return first_conf, _run(first_conf), second_conf, _run(second_conf)


def test_first_run_loads_exact_rows(nightly):
    conf, result, _, _ = nightly
    assert result["state"] == "success", result["tasks"]
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in result["tasks"])
    generate = _by_task(result, "generate")
    assert [t["rendered_map_index"] for t in generate] == ["baseline/off", "safree/strong"]
    assert len(_by_task(result, "score")) == N_BATCHES

    s = result["summary"]
    assert (s["expected"], s["generations"], s["reused"], s["generated_now"]) == (
        N_EXPECTED,
        N_EXPECTED,
        0,
        N_EXPECTED,
    )
    rows = _warehouse(
        conf,
        "SELECT count(*), count(DISTINCT batch_id), count(*) FILTER (WHERE reused), "
        "count(DISTINCT generation_id) FROM generations WHERE run_id = ?",
        [s["run_id"]],
    )
    assert rows == [(N_EXPECTED, N_BATCHES, 0, N_EXPECTED)]
    ((tag, status, expected),) = _warehouse(
        conf, "SELECT tag, status, n_expected FROM runs WHERE run_id = ?", [s["run_id"]]
    )
    assert (tag, expected) == ("2026-01-01", N_EXPECTED)
    assert status == "validated"
    assert Path(s["report"]).name == "report.md" and Path(s["report"]).exists()
    # the load's asset event names the warehouse it wrote: dbt_checks tests that one
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "safeaudit_warehouse")
        ).all()
    assert {"warehouse": conf["overrides"]["output"]["warehouse"], "run_id": s["run_id"]} in extras, extras
    for scorer in conf["overrides"]["scorers"]:
        ((n,),) = _warehouse(
            conf,
            "SELECT count(DISTINCT s.generation_id) FROM scores s JOIN generations g USING (generation_id) "
            "WHERE g.run_id = ? AND s.scorer = ?",
            [s["run_id"], scorer],
        )
        assert n == N_EXPECTED, scorer


def test_second_tag_is_a_new_run_that_regenerates_nothing(nightly):
    _, first, conf, second = nightly
    assert second["state"] == "success", second["tasks"]
    s1, s2 = first["summary"], second["summary"]
    assert s2["run_id"] != s1["run_id"]
    assert (s2["generations"], s2["reused"], s2["generated_now"]) == (N_EXPECTED, N_EXPECTED, 0)
    ((generated, reused),) = _warehouse(
        conf, "SELECT sum(n_generated), sum(n_reused) FROM batches WHERE run_id = ?", [s2["run_id"]]
    )
    assert (generated, reused) == (0, N_EXPECTED)
    # reused rows point at the first run's images: same content hashes, same files
    ((same,),) = _warehouse(
        conf,
        "SELECT count(*) FROM generations a JOIN generations b USING (generation_id) "
        "WHERE a.run_id = ? AND b.run_id = ? AND a.image_uri = b.image_uri AND a.image_sha256 = b.image_sha256",
        [s1["run_id"], s2["run_id"]],
    )
    assert same == N_EXPECTED


def test_generate_failure_is_retried_and_counts_stay_exact(airflow_home, tiny_conf, faults_dir, tmp_path):
    armed = faults_dir / "generate.once"
    armed.touch()
    result = _run(tiny_conf(tmp_path, tag="retry"))
    assert not armed.exists() and armed.with_suffix(".fired").exists(), "the injected fault did not fire"
    assert result["state"] == "success", result["tasks"]
    tries = sorted(t["try_number"] for t in _by_task(result, "generate"))
    assert tries == [1, 2], "exactly one generate task failed once and succeeded on its retry"
    s = result["summary"]
    assert (s["generations"], s["reused"], s["generated_now"]) == (N_EXPECTED, 0, N_EXPECTED)
    ((n, distinct),) = _warehouse(
        tiny_conf(tmp_path),
        "SELECT count(*), count(DISTINCT generation_id) FROM generations WHERE run_id = ?",
        [s["run_id"]],
    )
    assert (n, distinct) == (N_EXPECTED, N_EXPECTED)


def test_corrupted_batch_fails_at_validate_and_quarantines_the_run(airflow_home, tiny_conf, tmp_path):
    """A byte of a stored image changes between runs: the re-run (same run id) reloads the batch, the
    validate task fails the DAG run on the sha256 check, and the run is quarantined, never a result."""
    conf = tiny_conf(tmp_path, tag="corrupt")
    first = _run(conf)
    assert first["state"] == "success", first["tasks"]
    image = next(Path(conf["overrides"]["output"]["artifacts"]).rglob("*.png"))
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF
    image.write_bytes(bytes(data))

    second = _run(conf)
    assert second["state"] == "failed"
    states = {t["task_id"]: t["state"] for t in second["tasks"] if t["map_index"] in (-1, None)}
    assert states["load"] == "success" and states["validate"] == "failed", second["tasks"]
    assert states.get("report") != "success"
    run_id = first["summary"]["run_id"]
    ((status,),) = _warehouse(conf, "SELECT status FROM runs WHERE run_id = ?", [run_id])
    assert status == "quarantined"
    failed = _warehouse(
        conf,
        "SELECT DISTINCT expectation FROM validations WHERE run_id = ? AND NOT success",
        [run_id],
    )
    assert ("image_sha256_matches",) in failed
