"""Suite ``runs``: the run is complete and every comparison it makes has its baseline.

Version history: 1 — initial.
"""

from __future__ import annotations

from pipelines.expectations import Check, Suite, all_true

SUITE = Suite(
    name="runs",
    version="1",
    doc=__doc__,
    checks=(
        Check(
            "all_batches_loaded",
            "run",
            all_true("all_batches_loaded"),
            "every planned batch is in `batches` and the loader marked the run loaded",
        ),
        Check(
            "baseline_present_for_every_generation",
            "generations",
            all_true("baseline_present"),
            "each generation's baseline_generation_id (same prompt, seed, image index under `baseline`) is a "
            "baseline generation of this run: what fidelity scores compare against",
        ),
        Check(
            "baseline_matches_prompt_and_seed",
            "generations",
            all_true("baseline_same_prompt_seed"),
            "the referenced baseline has the same model, prompt, seed and image index",
        ),
        Check(
            "baseline_links_consistent",
            "generations",
            all_true("baseline_link_ok"),
            "baseline generations reference themselves and no other generation does",
        ),
    ),
)
