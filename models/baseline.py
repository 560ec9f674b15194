"""``baseline``: plain Stable Diffusion with classifier-free guidance, the origin of every trade-off curve."""

from __future__ import annotations

from models.method import SafetyMethod


class Baseline(SafetyMethod):
    name = "baseline"
    LEVELS = {"off": {}}

    def finish(self, ctx) -> None:
        for diag in ctx.diagnostics:
            diag["acted"] = False  # the reference: nothing to change
