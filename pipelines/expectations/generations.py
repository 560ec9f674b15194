"""Suite ``generations``: the run produced exactly the planned images, once each, intact, with honest configs.

Version history: 1 — initial.
"""

from __future__ import annotations

from pipelines.expectations import Check, Suite, all_true, at_most, equal, exactly, unique


def _no_images(frames) -> str | None:
    return None if frames.params.check_images else "image checks turned off (--no-images)"


def _no_rebuild(frames) -> str | None:
    return (
        None
        if frames.params.rebuild_configs
        else "opt-in (--rebuild-configs): imports torch and every method"
    )


def _no_degenerate(frames) -> str | None:
    if "degenerate" not in frames.requested_scorers:
        return "the run did not request the 'degenerate' scorer"
    return None


SUITE = Suite(
    name="generations",
    version="1",
    doc=__doc__,
    checks=(
        Check(
            "run_row_count_matches_plan",
            "run",
            equal("n_generations", "n_expected"),
            "generation rows of the run == runs.n_expected (the plan's total)",
        ),
        Check(
            "method_level_counts_match_plan",
            "points",
            equal("n_generations", "expected"),
            "per method point: rows == prompts x seeds from the spec (distinct prompt text, seed); "
            "an unplanned point has expected -1",
        ),
        Check(
            "batch_counts_match_manifest",
            "batches",
            equal("n_generations", "n_items"),
            "per batch: rows == the manifest's n_items (batches.n_items); a batch missing from `batches` has -1",
        ),
        Check(
            "generation_ids_unique",
            "generations",
            unique("generation_id"),
            "a generation id appears once per run",
        ),
        Check(
            "generation_natural_keys_unique",
            "generations",
            exactly("n_same_key", 1),
            "one row per (model, method point, prompt, seed, image index)",
        ),
        Check(
            "image_files_exist",
            "generations",
            all_true("image_exists"),
            "every image_uri exists in the artifact store",
            skip=_no_images,
        ),
        Check(
            "image_sha256_matches",
            "generations",
            all_true("image_sha256_ok"),
            "the image file's sha256 == generations.image_sha256",
            skip=_no_images,
        ),
        Check(
            "image_decodes_to_recorded_size",
            "generations",
            all_true("image_size_ok"),
            "the file decodes as a PNG of width x height",
            skip=_no_images,
        ),
        Check(
            "configs_parse_as_json", "configs", all_true("config_json_ok"), "method_config is a JSON object"
        ),
        Check(
            "config_hash_matches_config",
            "configs",
            all_true("config_hash_ok"),
            "sha256(json.dumps(method_config, sort_keys=True))[:16] == config_hash (SafetyMethod.config_hash)",
        ),
        Check(
            "config_matches_method",
            "configs",
            all_true("config_method_ok"),
            "method_config.method == the row's method",
        ),
        Check(
            "config_matches_batch",
            "configs",
            all_true("config_batch_ok"),
            "the generation's config and hash == its batch's",
        ),
        Check(
            "config_rebuilds_from_registry",
            "rebuilt",
            all_true("config_rebuilds"),
            "each planned method point, rebuilt via models.registry with this checkout's code and concept pack, "
            "has the stored config_hash (one per point)",
            skip=_no_rebuild,
        ),
        Check(
            "black_image_share_within_tolerance",
            "points",
            at_most("black_share", "max_black_share"),
            "per method point: share of is_black frames <= max_black_share",
            skip=_no_degenerate,
        ),
        Check(
            "constant_image_share_within_tolerance",
            "points",
            at_most("constant_share", "max_constant_share"),
            "per method point: share of is_constant frames <= max_constant_share",
            skip=_no_degenerate,
        ),
    ),
)
