"""``negative_prompt``: the unsafe concept's keywords as the unconditional text of classifier-free guidance.

The simplest training-free defence and the reference point every other method should beat: the concept
pack's keyword list, joined with ", ", replaces "" as c_∅, so ε̃ = ε(z, c_neg) + s_g·(ε(z, c_p) − ε(z, c_neg))
pushes away from the keywords. Identical to diffusers' ``negative_prompt=`` (tested).

Levels ``weak | medium | strong | max`` are the pack's ``negative_prompt_levels`` lists. The knob
``num_keywords`` k uses the first k keywords of the ``max`` list (k = 0 is the baseline), so a sweep adds one
keyword at a time in the pack's order. A sampler-wide negative prompt (``SamplerSettings.negative_prompt``),
if any, is kept in front of the keywords rather than silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from models.method import MethodConfig, SafetyMethod

if TYPE_CHECKING:
    from models.sampler import Context

SEPARATOR = ", "


@dataclass(frozen=True)
class NegativePromptConfig(MethodConfig):
    # which of the pack's lists: a level name (weak|medium|strong|max), or None = off (the baseline)
    keyword_level: str | None = "medium"
    # the knob: the first k keywords of the ``max`` list (takes precedence over keyword_level)
    num_keywords: int | None = None


class NegativePrompt(SafetyMethod):
    name = "negative_prompt"
    version = "1"
    Config = NegativePromptConfig
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "off": {"keyword_level": None},
        "weak": {"keyword_level": "weak"},
        "medium": {"keyword_level": "medium"},
        "strong": {"keyword_level": "strong"},
        "max": {"keyword_level": "max"},
    }
    KNOB = "num_keywords"
    KNOB_VALUES = (0, 1, 2, 3, 4, 6, 8, 12, 17)  # counts past the list's length use the whole list
    # diffusers' ``negative_prompt=`` on each family's pipeline (the pooled rows follow the text: SDXL's
    # encoder-2 projection, SD3's both projections)
    FAMILIES: ClassVar[dict[str, str]] = {"sd": "release", "sdxl": "release", "sd3": "release"}

    config: NegativePromptConfig

    @classmethod
    def knob_to_config(cls, value: float) -> dict[str, Any]:
        if value < 0 or value != int(value):
            raise ValueError(f"negative_prompt num_keywords must be a whole number ≥ 0; got {value:g}")
        return {"num_keywords": int(value)}

    def keywords(self) -> tuple[str, ...]:
        """The keywords this configuration puts into the negative prompt, in the pack's order."""
        cfg = self.config
        if self.is_off:
            return ()
        if self.concept is None:
            raise ValueError(
                "method 'negative_prompt' needs a concept pack (its negative_prompt_levels lists)"
            )
        levels = self.concept.negative_prompt_levels
        level = "max" if cfg.num_keywords is not None else cfg.keyword_level
        if level not in levels:
            raise ValueError(
                f"concept pack {self.concept.pack_id!r} has no negative_prompt_levels[{level!r}]; "
                f"it has: {', '.join(levels) or 'none'}"
            )
        words = tuple(levels[level])
        return words if cfg.num_keywords is None else words[: cfg.num_keywords]

    @property
    def negative_text(self) -> str:
        """The exact unconditional text, as recorded in the generation id."""
        return SEPARATOR.join(self.keywords())

    @property
    def is_off(self) -> bool:
        cfg = self.config
        return cfg.num_keywords == 0 or (cfg.num_keywords is None and cfg.keyword_level is None)

    def concept_fields(self) -> dict[str, Any]:
        return {} if self.is_off else {"negative_prompt": self.negative_text}

    def missing_data(self, model: str, height: int, width: int) -> str | None:
        try:
            self.keywords()
        except ValueError as exc:
            return str(exc)
        return None

    def finish(self, ctx: Context) -> None:
        for diag in ctx.diagnostics:  # the keywords replace c_∅ of every image whenever CFG is on
            diag["acted"] = not self.is_off and ctx.do_cfg

    def setup(self, ctx: Context) -> None:
        # Without CFG there is no unconditional branch to replace (diffusers ignores negative_prompt too).
        if self.is_off or not ctx.do_cfg:
            return
        text = self.negative_text
        # a sampler-wide negative prompt (e.g. "blurry") is kept; the concept's keywords follow it
        if ctx.settings.negative_prompt:
            text = SEPARATOR.join([ctx.settings.negative_prompt, text])
        ctx.uncond = ctx.encode_rows([text] * ctx.batch_size)  # one row, shared by every request
