"""Model families as the run spec sees them: which family a model is, and which methods run on it.

    ModelSpec.id ──family_of──▶ 'sd' | 'sdxl' | 'sd3' ──supports(method, family)──▶ run-spec error or go

The facts live in ``models/``: ``models.components.family_of`` reads a model folder's
``model_index.json`` (or a built-in's name) without loading weights, ``models.registry.supports`` reads
each method's ``FAMILIES``. This module only decides what the spec may say: an explicit ``family:`` is checked against
what the model folder says, and a hub id that is not on disk takes the family the spec gives.
"""

from __future__ import annotations

from pathlib import Path

from models.components import FAMILIES, family_of
from models.registry import supports

__all__ = ["FAMILIES", "family_of", "inspectable", "resolve_family", "supports"]


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
