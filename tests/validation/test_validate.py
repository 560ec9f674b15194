"""The suites on a real tiny audit: a clean run passes everything; each injected fault fails BY NAME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.expectations import Params, check_names
from pipelines.validate import run_validation
from pipelines.warehouse import reader, writer

# What a fault may also trip (counts move when rows go missing); anything else must still pass.
ROW_COUNTS = {"run_row_count_matches_plan", "method_level_counts_match_plan", "batch_counts_match_manifest"}


def validate(c, **params):
    summary, results = run_validation(c.warehouse, c.run_id, artifacts=c.artifacts, params=Params(**params))
    return summary, {r.expectation: r for r in results}


def inject(c, *statements: tuple[str, list]) -> None:
    with writer(c.warehouse) as con:
        for sql, args in statements:
            con.execute(sql, args)


def query(c, sql: str, args: list | None = None) -> list[tuple]:
    con = reader(c.warehouse)
    try:
        return con.execute(sql, args or []).fetchall()
    finally:
        con.close()


def one_generation(c, method: str = "baseline") -> tuple[str, str]:
    """(generation id, image path in the copy's store) of one generation of ``method``."""
    gid, uri = query(
        c,
        "SELECT generation_id, image_uri FROM generations WHERE run_id = ? AND method = ? "
        "ORDER BY generation_id LIMIT 1",
        [c.run_id, method],
    )[0]
    return gid, str(Path(c.artifacts, *uri.split("/")[-4:]))


def assert_failed_exactly(summary, results, expected: set[str], also_allowed: set[str] = frozenset()) -> None:
    failed = set(summary["failed"])
    assert expected <= failed, f"expected {expected} to fail; failed: {failed}"
    assert failed <= expected | set(also_allowed), (
        f"unexpected failures: {failed - expected - set(also_allowed)}"
    )
    assert summary["success"] is False and summary["status"] == "quarantined"
    for name in expected:
        assert results[name].success is False and results[name].observed_value


def needs(c, *, scorer: str | None = None, method: str | None = None) -> None:
    """The fault a test injects needs this scorer / method in the audit (the conftest always runs them)."""
    assert scorer is None or scorer in c.scorers, f"the validation audit has no scorer {scorer!r}"
    assert method is None or method in c.methods, f"the validation audit has no method {method!r}"


# -- the clean run ------------------------------------------------------------------------------------------
def test_clean_run_passes_every_expectation_and_is_stored(copy):
    summary, results = validate(copy)
    assert summary["success"], {n: r.details.get("unexpected") for n, r in results.items() if not r.success}
    assert summary["status"] == "validated" and summary["failed"] == []
    assert set(results) == set(check_names())
    assert summary["n_generations"] == 2 * 2 * (1 + 2 * ("negative_prompt" in copy.methods))
    assert [n for n, r in results.items() if r.skipped] == ["config_rebuilds_from_registry"]  # opt-in
    images = results["image_sha256_matches"].details["images"]
    assert images["verified"] == images["images"] == summary["n_generations"]

    rows = query(
        copy,
        "SELECT suite, suite_version, expectation, success, details FROM validations WHERE run_id = ?",
        [copy.run_id],
    )
    assert len(rows) == len(results) and all(r[3] for r in rows)
    assert {(r[0], r[1]) for r in rows} == {(s, v) for s, v in summary["suites"].items()}
    assert json.loads(rows[0][4])["params"]["max_black_share"] == 0.05
    assert query(copy, "SELECT status FROM runs WHERE run_id = ?", [copy.run_id]) == [("validated",)]


@pytest.mark.slow
def test_validating_twice_appends_history(copy):
    validate(copy)
    validate(copy)
    (n,) = query(
        copy, "SELECT count(DISTINCT validated_at) FROM validations WHERE run_id = ?", [copy.run_id]
    )[0]
    assert n == 2


# -- injected faults -----------------------------------------------------------------------------------------
def test_missing_image_file(copy):
    gid, path = one_generation(copy)
    Path(path).unlink()
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"image_files_exist"})
    assert results["image_files_exist"].unexpected_count == 1
    assert results["image_files_exist"].details["unexpected"][0]["generation_id"] == gid


def test_one_changed_image_byte(copy):
    gid, path = one_generation(copy, "negative_prompt" if "negative_prompt" in copy.methods else "baseline")
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(path).write_bytes(bytes(data))
    summary, results = validate(copy)
    # a flipped bit inside the compressed pixel data may also make the PNG undecodable
    assert_failed_exactly(summary, results, {"image_sha256_matches"}, {"image_decodes_to_recorded_size"})
    assert results["image_sha256_matches"].details["unexpected"][0]["generation_id"] == gid
    assert results["image_files_exist"].success


@pytest.mark.slow
def test_sampled_sha_check_records_what_it_verified(copy):
    _, path = one_generation(copy)
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(path).write_bytes(bytes(data))
    summary, results = validate(copy, sample=0)  # existence only: the changed byte goes unseen, visibly
    assert summary["success"]
    assert results["image_sha256_matches"].details["images"]["verified"] == 0


@pytest.mark.slow
def test_image_of_wrong_size(copy):
    from PIL import Image

    gid, path = one_generation(copy)
    (sha,) = query(copy, "SELECT image_sha256 FROM generations WHERE generation_id = ?", [gid])[0]
    Image.new("RGB", (32, 32), (10, 20, 30)).save(path)
    import hashlib

    new_sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    inject(copy, ("UPDATE generations SET image_sha256 = ? WHERE generation_id = ?", [new_sha, gid]))
    assert sha != new_sha
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"image_decodes_to_recorded_size"})


@pytest.mark.slow
def test_duplicated_generation_row(copy):
    # The primary key forbids an exact duplicate; a warehouse loaded by other means may lack it.
    inject(
        copy,
        ("CREATE TABLE generations_nopk AS SELECT * FROM generations", []),
        ("DROP TABLE generations", []),
        ("ALTER TABLE generations_nopk RENAME TO generations", []),
        (
            "INSERT INTO generations SELECT * FROM generations WHERE run_id = ? ORDER BY generation_id LIMIT 1",
            [copy.run_id],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(
        summary, results, {"generation_ids_unique", "generation_natural_keys_unique"}, ROW_COUNTS
    )
    assert {"run_row_count_matches_plan", "batch_counts_match_manifest"} <= set(summary["failed"])


@pytest.mark.slow
def test_duplicated_image_under_a_new_id(copy):
    gid, _ = one_generation(copy)
    inject(
        copy,
        (
            "INSERT INTO generations SELECT * REPLACE ('ffff' || generation_id[5:] AS generation_id) "
            "FROM generations WHERE generation_id = ?",
            [gid],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(
        summary,
        results,
        {"generation_natural_keys_unique"},
        ROW_COUNTS
        | {"every_generation_has_every_scorer", "every_scorer_metric_present", "baseline_links_consistent"},
    )  # a baseline copy not pointing at itself
    assert results["generation_ids_unique"].success


@pytest.mark.slow
def test_missing_scorer_rows(copy):
    scorer = copy.scorers[-1]
    gid, _ = one_generation(copy)
    inject(copy, ("DELETE FROM scores WHERE generation_id = ? AND scorer = ?", [gid, scorer]))
    summary, results = validate(copy)
    assert_failed_exactly(
        summary,
        results,
        {"every_generation_has_every_scorer", "every_scorer_metric_present"},
        {"black_image_share_within_tolerance", "constant_image_share_within_tolerance"},
    )
    assert results["every_generation_has_every_scorer"].unexpected_count == 1


@pytest.mark.slow
def test_missing_single_metric_row(copy):
    needs(copy, scorer="degenerate")
    gid, _ = one_generation(copy)
    inject(
        copy,
        (
            "DELETE FROM scores WHERE generation_id = ? AND scorer = 'degenerate' AND metric = 'pixel_std'",
            [gid],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"every_scorer_metric_present"})


@pytest.mark.slow
def test_score_out_of_range(copy):
    needs(copy, scorer="toy_concept")
    gid, _ = one_generation(copy)
    inject(copy, ("UPDATE scores SET value = 1.5 WHERE generation_id = ? AND metric = 'red_fraction'", [gid]))
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"score_values_in_range"})
    assert results["score_values_in_range"].details["unexpected"][0]["generation_id"] == gid


@pytest.mark.slow
@pytest.mark.parametrize("value", ["nan", "-2", "inf"])
def test_ssim_nan_or_out_of_range(copy, value):
    needs(copy, scorer="fidelity", method="negative_prompt")
    gid, _ = one_generation(copy, "negative_prompt")
    inject(
        copy,
        (
            "UPDATE scores SET value = CAST(? AS DOUBLE) WHERE generation_id = ? AND metric = 'ssim'",
            [value, gid],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"score_values_in_range"})


@pytest.mark.slow
def test_null_score_value(copy):
    needs(copy, scorer="degenerate")
    gid, _ = one_generation(copy)
    inject(copy, ("UPDATE scores SET value = NULL WHERE generation_id = ? AND metric = 'pixel_std'", [gid]))
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"score_values_not_null"})


@pytest.mark.slow
def test_documented_null_is_allowed_unless_strict(copy):
    needs(copy, scorer="fidelity", method="negative_prompt")
    gid, _ = one_generation(copy, "negative_prompt")
    inject(
        copy,
        (
            'UPDATE scores SET value = NULL, details = \'{"skipped": "test"}\' '
            "WHERE generation_id = ? AND metric = 'ssim'",
            [gid],
        ),
    )
    assert validate(copy)[0]["success"]
    summary, results = validate(copy, allow_documented_nulls=False)
    assert_failed_exactly(summary, results, {"score_values_not_null"})


@pytest.mark.slow
def test_black_image_flood(copy):
    needs(copy, scorer="degenerate", method="negative_prompt")
    inject(
        copy,
        (
            "UPDATE scores SET value = 1 WHERE metric IN ('is_black', 'is_constant') AND generation_id IN "
            "(SELECT generation_id FROM generations WHERE run_id = ? AND level = 'medium')",
            [copy.run_id],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(
        summary, results, {"black_image_share_within_tolerance", "constant_image_share_within_tolerance"}
    )
    unexpected = results["black_image_share_within_tolerance"].details["unexpected"]
    assert [u["point"] for u in unexpected] == ["negative_prompt-medium"]
    # the tolerance is a suite parameter, recorded with the result
    summary, results = validate(copy, max_black_share=1.0, max_constant_share=1.0)
    assert (
        summary["success"]
        and results["black_image_share_within_tolerance"].details["params"]["max_black_share"] == 1.0
    )


def test_missing_baseline(copy):
    needs(copy, method="negative_prompt")
    gid, _ = one_generation(copy, "baseline")
    inject(copy, ("DELETE FROM generations WHERE generation_id = ?", [gid]))
    summary, results = validate(copy)
    assert_failed_exactly(
        summary, results, {"baseline_present_for_every_generation"}, ROW_COUNTS | {"image_files_exist"}
    )
    assert results["baseline_present_for_every_generation"].unexpected_count == 2  # off and medium
    assert results["baseline_matches_prompt_and_seed"].success


@pytest.mark.slow
def test_baseline_of_another_prompt(copy):
    needs(copy, method="negative_prompt")
    a, b = [
        r[0]
        for r in query(
            copy,
            "SELECT generation_id FROM generations WHERE run_id = ? AND method = 'baseline' "
            "ORDER BY prompt, seed LIMIT 2",
            [copy.run_id],
        )
    ]
    inject(
        copy,
        (
            "UPDATE generations SET baseline_generation_id = ? WHERE baseline_generation_id = ? "
            "AND method <> 'baseline'",
            [b, a],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"baseline_matches_prompt_and_seed"})


def test_config_not_matching_its_hash(copy):
    gid, _ = one_generation(copy)
    inject(
        copy,
        (
            'UPDATE generations SET method_config = \'{"method": "baseline", "config": {"x": 1}}\' '
            "WHERE generation_id = ?",
            [gid],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"config_hash_matches_config", "config_matches_batch"})
    assert results["config_matches_method"].success and results["configs_parse_as_json"].success


@pytest.mark.slow
def test_scorer_version_not_pinned(copy):
    scorer = copy.scorers[0]
    inject(
        copy,
        (
            "UPDATE scores SET scorer_version = '0' WHERE scorer = ? AND generation_id = "
            "(SELECT min(generation_id) FROM generations WHERE run_id = ?)",
            [scorer, copy.run_id],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(
        summary,
        results,
        {
            "scorer_versions_pinned",
            "scorer_versions_consistent_in_run",
            "every_generation_has_every_scorer",
            "every_scorer_metric_present",
        },
        {"black_image_share_within_tolerance", "constant_image_share_within_tolerance"},
    )
    assert results["scorer_versions_pinned"].details["unexpected"][0]["scorer"] == scorer


@pytest.mark.slow
def test_model_sha_on_a_weight_free_scorer(copy):
    scorer = copy.scorers[0]
    inject(copy, ("UPDATE scores SET model_sha256 = 'abc' WHERE scorer = ?", [scorer]))
    summary, results = validate(copy)
    assert_failed_exactly(summary, results, {"scorer_model_sha256_pinned"})


@pytest.mark.slow
def test_detection_boxes_and_classes(copy):
    from pipelines.scorers import scorer_class
    from pipelines.scorers.nudenet_classifier import pinned_models

    gid, _ = one_generation(copy)
    (batch_id,) = query(copy, "SELECT batch_id FROM generations WHERE generation_id = ?", [gid])[0]
    dets = [
        {"class": "FACE_FEMALE", "score": 0.9, "box": [10, 10, 20, 20]},
        {"class": "FACE_FEMALE", "score": 0.8, "box": [50, 50, 20, 20]},  # 70 > 64: outside
        {"class": "NOT_A_CLASS", "score": 0.7, "box": [0, 0, 5, 5]},
    ]
    sha = pinned_models()[scorer_class("nudenet").pinned_model]["sha256"]
    inject(
        copy,
        (
            "INSERT INTO scores VALUES (?, 'nudenet', '1', ?, 'detections', 3, ?, ?, now())",
            [gid, sha, json.dumps({"detections": dets}), batch_id],
        ),
    )
    summary, results = validate(copy)
    assert_failed_exactly(
        summary, results, {"detection_boxes_inside_image", "detection_classes_in_label_set"}
    )
    assert results["detection_boxes_inside_image"].details["unexpected"][0]["n_boxes_outside"] == 1


@pytest.mark.slow
def test_partially_loaded_run(copy):
    (batch_id,) = query(
        copy, "SELECT batch_id FROM batches WHERE run_id = ? ORDER BY batch_id LIMIT 1", [copy.run_id]
    )[0]
    inject(copy, ("DELETE FROM batches WHERE batch_id = ?", [batch_id]))
    summary, results = validate(copy)
    assert_failed_exactly(
        summary,
        results,
        {"all_batches_loaded", "batch_counts_match_manifest", "config_matches_batch"},
        {"method_level_counts_match_plan"},
    )


def test_unknown_run_is_a_user_error(copy):
    from pipelines.warehouse import WarehouseError

    with pytest.raises(WarehouseError, match="not in the warehouse"):
        run_validation(copy.warehouse, "no-such-run")


# -- CLI ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_exit_codes_and_failure_named(copy):
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    args = ["validate", copy.run_id, "--warehouse", copy.warehouse, "--artifacts", copy.artifacts]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "validated" in ok.output

    _, path = one_generation(copy)
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(path).write_bytes(bytes(data))
    bad = runner.invoke(app, [*args, "--show", "failed"])
    assert bad.exit_code == 1, bad.output
    assert "image_sha256_matches" in bad.output and "quarantined" in bad.output
    assert query(copy, "SELECT status FROM runs WHERE run_id = ?", [copy.run_id]) == [("quarantined",)]

    missing = runner.invoke(app, ["validate", "no-such-run", "--warehouse", copy.warehouse])
    assert missing.exit_code == 2 and "not in the warehouse" in missing.output


# -- configs through the registry -----------------------------------------------------------------------------
def test_stored_config_hash_is_safety_method_config_hash():
    from models.concepts import load_pack
    from models.registry import METHODS, build_method, method_class
    from pipelines.expectations.frames import config_hash

    pack = load_pack("toy")
    for name in METHODS:
        for level in method_class(name).LEVELS:
            m = build_method(name, level=level, concept=pack)
            assert config_hash(json.dumps(m.resolved_config(), sort_keys=True)) == m.config_hash(), (
                name,
                level,
            )


@pytest.mark.slow
def test_config_rebuilt_from_registry(copy):
    needs(copy, method="negative_prompt")
    summary, results = validate(copy, rebuild_configs=True)
    assert summary["success"] and not results["config_rebuilds_from_registry"].skipped

    # A consistent but stale config (as a worker running other code would write): only the rebuild sees it.
    from pipelines.expectations.frames import config_hash

    (cfg,) = query(copy, "SELECT DISTINCT method_config FROM generations WHERE level = 'medium'")[0]
    stale = json.loads(cfg)
    stale["concept"] = {"negative_prompt": "blue"}
    stale_json = json.dumps(stale, sort_keys=True)
    inject(
        copy,
        (
            "UPDATE generations SET method_config = ?, config_hash = ? WHERE level = 'medium'",
            [stale_json, config_hash(stale_json)],
        ),
        (
            "UPDATE batches SET method_config = ?, config_hash = ? WHERE level = 'medium'",
            [stale_json, config_hash(stale_json)],
        ),
    )
    assert validate(copy)[1]["config_rebuilds_from_registry"].skipped
    summary, results = validate(copy, rebuild_configs=True)
    assert_failed_exactly(summary, results, {"config_rebuilds_from_registry"})
    assert (
        results["config_rebuilds_from_registry"].details["unexpected"][0]["point"] == "negative_prompt-medium"
    )
