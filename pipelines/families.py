"""Model families as the run spec sees them: which family a model is, and which methods run on it.

    ModelSpec.id ──family_of──▶ 'sd' | 'sdxl' | 'sd3' ──supports(method, family)──▶ run-spec error or go

The facts live in ``models/`` (issue 14b): ``models.components.family_of`` reads a model folder's
``model_index.json`` (or a built-in's name) without loading weights, ``models.registry.supports`` reads
each method's ``FAMILIES``. Until that lands, the fallbacks below stand in for them (marked: delete them
at the merge). This module only decides what the spec may say: an explicit ``family:`` is checked against
what the model folder says, and a hub id that is not on disk takes the family the spec gives.
"""

from __future__ import annotations

import json
from pathlib import Path

FAMILIES = ("sd", "sdxl", "sd3")
# diffusers' pipeline class in model_index.json -> family
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
}
BUILTIN_FAMILIES = {
    "builtin:toy": "sd",
    "builtin:tiny": "sd",
    "builtin:tiny-sdxl": "sdxl",
    "builtin:tiny-sd3": "sd3",
}


def _fallback_family_of(model_id: str) -> str:
    # PLACEHOLDER until issue 14b merges (replaced by models.components.family_of): built-in names and
    # model_index.json; 'sd' for anything else.
    if model_id in BUILTIN_FAMILIES:
        return BUILTIN_FAMILIES[model_id]
    index = Path(model_id).expanduser() / "model_index.json"
    if index.exists():
        cls = json.loads(index.read_text()).get("_class_name", "")
        return PIPELINE_FAMILIES.get(cls, "sd")
    return "sd"


def _fallback_supports(method: str, family: str) -> bool:
    # PLACEHOLDER until issue 14b merges (replaced by models.registry.supports): a method declares its
    # families in FAMILIES; without the declaration it is an SD-1.x/2.x method, except the baseline.
    from models.registry import method_class

    families = getattr(method_class(method), "FAMILIES", None)
    if families is not None:
        return family in families
    return family == "sd" or method == "baseline"


try:  # issue 14b's
    from models.components import family_of
except ImportError:  # pragma: no cover - until 14b merges
    family_of = _fallback_family_of
try:
    from models.registry import supports
except ImportError:  # pragma: no cover - until 14b merges
    supports = _fallback_supports


def inspectable(model_id: str) -> bool:
    """Whether the family can be read without the hub: a built-in or a local folder with model_index.json."""
    return model_id.startswith("builtin:") or (Path(model_id).expanduser() / "model_index.json").exists()


def resolve_family(model_id: str, given: str | None) -> str:
    """The model's family: read from the model where it can be (and ``given`` must agree), else ``given``,
    else what ``family_of`` says (``'sd'`` for a hub id it cannot see)."""
    if given is not None and not inspectable(model_id):
        return given
    try:
        found = family_of(model_id)
    except Exception as exc:  # e.g. a folder whose model_index.json names no known pipeline
        raise ValueError(
            f"cannot tell the family of {model_id} ({str(exc).splitlines()[0]}); give 'family'"
        ) from None
    if given is not None and given != found:
        raise ValueError(f"family {given!r} given, but {model_id} is a {found!r} model")
    return found
