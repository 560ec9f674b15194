"""``baseline``: plain Stable Diffusion with classifier-free guidance, the origin of every trade-off curve."""

from __future__ import annotations

from models.method import SafetyMethod


class Baseline(SafetyMethod):
    name = "baseline"
    LEVELS = {"off": {}}
    # plain sampling equals each family's diffusers pipeline (tested), the models' own reference code
    FAMILIES = {"sd": "release", "sdxl": "release", "sd3": "release"}

    def finish(self, ctx) -> None:
        for diag in ctx.diagnostics:
            diag["acted"] = False  # the reference: nothing to change
