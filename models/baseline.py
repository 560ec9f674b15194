"""``baseline``: plain Stable Diffusion with classifier-free guidance, the origin of every trade-off curve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.method import SafetyMethod

if TYPE_CHECKING:
    from models.sampler import Context


class Baseline(SafetyMethod):
    name = "baseline"
    LEVELS = {"off": {}}
    # plain sampling equals each family's diffusers pipeline (tested), the models' own reference code
    FAMILIES = {"sd": "release", "sdxl": "release", "sd3": "release"}

    def finish(self, ctx: Context) -> None:
        for diag in ctx.diagnostics:
            diag["acted"] = False  # the reference: nothing to change
