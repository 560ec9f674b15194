"""Suite ``scores``: every generation scored by every requested scorer, plausible values, pinned scorers.

Ranges, optional and nullable metrics, pinned model files: declared on each scorer class
(``Scorer.metric_ranges``, ``optional_metrics``, ``nullable_metrics``, ``weights``, ``pinned_model`` in
pipelines/scorers). They are part of this suite's meaning: bump its version when they change.

Version history: 1 — initial.
"""

from __future__ import annotations

from pipelines.expectations import Check, Suite, all_true, all_zero

SUITE = Suite(
    name="scores",
    version="1",
    doc=__doc__,
    checks=(
        Check(
            "every_generation_has_every_scorer",
            "generations",
            all_zero("n_missing_scorers"),
            "each generation has rows from every scorer in the spec, at the scorer's current version "
            "(scorers that compare with the baseline are not required on the baseline itself)",
        ),
        Check(
            "every_scorer_metric_present",
            "generations",
            all_zero("n_missing_metrics"),
            "each (generation, requested scorer) has every metric the scorer declares (lpips optional)",
        ),
        Check(
            "score_metrics_known",
            "generations",
            all_zero("n_unknown_metrics"),
            "every stored metric is one its scorer declares",
        ),
        Check(
            "score_values_not_null",
            "generations",
            all_zero("n_null_values"),
            "no null values, except those a scorer documents (details.skipped, or a nullable metric)",
        ),
        Check(
            "score_values_in_range",
            "generations",
            all_zero("n_out_of_range"),
            "values finite and in range: probabilities and shares in [0, 1], ssim in [-1, 1], psnr >= 0, "
            "counts >= 0, ...",
        ),
        Check(
            "detection_boxes_inside_image",
            "generations",
            all_zero("n_boxes_outside"),
            "NudeNet boxes [x, y, w, h] lie inside the generation's width x height",
        ),
        Check(
            "detection_classes_in_label_set",
            "generations",
            all_zero("n_bad_classes"),
            "NudeNet detection classes are among the detector's 18 classes",
        ),
        Check(
            "scorer_versions_pinned",
            "scorers",
            all_true("version_ok"),
            "rows written by the run's batches carry the scorer class's version",
        ),
        Check(
            "scorer_model_sha256_pinned",
            "scorers",
            all_true("model_sha_ok"),
            "rows carry the pinned model-file sha256 (models.json), none for weight-free scorers",
        ),
        Check(
            "scorer_versions_consistent_in_run",
            "scorers",
            all_true("consistent"),
            "one (version, model sha256) per scorer within the run",
        ),
    ),
)
