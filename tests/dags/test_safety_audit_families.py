"""``dag.test()`` of safety_audit on a spec with two models in one run, each with its own batch size.

Always: builtin:tiny + builtin:toy (two models of family 'sd'). With issue 14b: runspecs/tiny_families.yaml
(SD + SDXL). Airflow runs the DAG itself (SQLite metadata, dag.test); the warehouse is a real DuckDB file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines import airflow_local

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp: Path, models: list[dict]) -> Path:
    spec = {
        "name": "dag-families",
        "models": models,
        "sampler": {"scheduler": "ddim", "steps": 2},
        "concept": "toy",
        "prompt_sets": [
            {"name": "core", "builtin": "benign_core", "limit": 2, "role": "benign"},
            {"name": "red", "builtin": "toy_unsafe", "limit": 2, "role": "unsafe"},
        ],
        "methods": [{"name": "baseline"}, {"name": "negative_prompt", "levels": ["max"]}],
        "scorers": ["degenerate"],
        "batch_size": 2,
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _run_dag(tmp: Path, models: list[dict]) -> tuple[dict, str]:
    wh = tmp / "warehouse" / "safeaudit.duckdb"
    conf = {
        "spec": str(_spec(tmp, models)),
        "tag": None,
        "overrides": {"output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(wh)}},
    }
    result = airflow_local.run_dag_test(conf)
    assert result["state"] == "success", [t for t in result["tasks"] if t["state"] != "success"]
    return result, str(wh)


def _rows(wh: str, sql: str, params: list) -> list[tuple]:
    from pipelines.warehouse import reader

    con = reader(wh)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _check(result: dict, wh: str, families: dict[str, str], batches: dict[str, int]) -> None:
    run_id = result["summary"]["run_id"]
    labels = sorted(t["rendered_map_index"] for t in result["tasks"] if t["task_id"] == "generate")
    for key, n in batches.items():  # one mapped generate task per batch, named model/method/level
        assert sum(lb.startswith(f"{key}/") for lb in labels) == n, labels
    assert f"{next(iter(batches))}/baseline/off" in labels
    got = _rows(
        wh,
        "SELECT model_id, family, count(*), count(DISTINCT batch_id) FROM generations WHERE run_id = ? "
        "GROUP BY ALL ORDER BY 1",
        [run_id],
    )
    assert {m: f for m, f, *_ in got} == families and all(n == 8 for _, _, n, _ in got)
    points = _rows(
        wh,
        "SELECT family, model_id, count(*) FILTER (WHERE is_baseline) FROM mart_tradeoff "
        "WHERE run_id = ? AND rule = 'toy_red' GROUP BY ALL",
        [run_id],
    )
    assert sorted((m, f) for f, m, _ in points) == sorted(families.items()) and {n for *_, n in points} == {1}
    ((status,),) = _rows(wh, "SELECT status FROM runs WHERE run_id = ?", [run_id])
    assert status == "validated"  # the DAG's validate task passed the run


def test_dag_runs_two_models_with_their_own_batch_sizes(airflow_home, tmp_path):
    from models.components import TOY_MODEL_DIR

    if not (TOY_MODEL_DIR / "model_index.json").exists():
        pytest.skip("toy weights not trained (models/toy/weights)")
    models = [{"id": "builtin:tiny"}, {"id": "builtin:toy", "batch_size": 4}]
    result, wh = _run_dag(tmp_path, models)
    # 4 prompts x 2 points per model: tiny in batches of 2 (4 batches), toy in batches of 4 (2 batches)
    _check(result, wh, {"builtin:tiny": "sd", "builtin:toy": "sd"}, {"tiny": 4, "toy": 2})


def _tiny_sdxl_available() -> bool:
    try:
        from models.components import resolve_model

        return resolve_model("builtin:tiny-sdxl")[1] is not None
    except Exception:
        return False


@pytest.mark.skipif(
    not _tiny_sdxl_available(),
    reason="needs issue 14b: builtin:tiny-sdxl is not loadable in this checkout (the lead runs it after the merge)",
)
def test_dag_runs_the_tiny_two_family_spec(airflow_home, tmp_path):
    models = yaml.safe_load((REPO / "runspecs" / "tiny_families.yaml").read_text())["models"]
    result, wh = _run_dag(tmp_path, models)
    _check(result, wh, {"builtin:tiny": "sd", "builtin:tiny-sdxl": "sdxl"}, {"tiny": 4, "tiny-sdxl": 2})
