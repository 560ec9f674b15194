"""Method registry: names map to lazy ``"module:Class"`` strings, so listing methods imports no torch.

A new method is one module in ``models/`` plus one line here; run specs, the warehouse and the dashboard
pick it up by name. Every line is real: a line whose target does not import raises ``RegistryError``
naming the line (tests/models/test_method_registry.py imports them all), never a silent skip.
"""

from __future__ import annotations

import importlib
from typing import Any

METHODS: dict[str, str] = {
    "baseline": "models.baseline:Baseline",
    "negative_prompt": "models.negative_prompt:NegativePrompt",
    "sld": "models.sld:SLD",
    "safree": "models.safree:SAFREE",
    "safe_denoiser": "models.safe_denoiser:SafeDenoiser",
    "dual_latent": "models.dual_latent:DualLatent",
}


SCHEDULERS = ("ddim", "dpm++", "pndm", "ddpm", "euler")  # names the shared sampler accepts


class UnknownMethodError(ValueError):
    pass


class RegistryError(ImportError):
    """A registry line whose target does not import: a bug in this checkout, not in the user's input."""


def method_class(name: str) -> Any:
    try:
        target = METHODS[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
    return import_target(target, f"models/registry.py: method {name!r}")


def import_target(target: str, where: str) -> Any:
    """The class a registry line ``"module:Class"`` names; ``RegistryError`` (one line, naming ``where``
    and the target) when it does not import."""
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RegistryError(f"{where} -> {target!r} does not import: {reason}") from exc


def supports(method: str, family: str) -> bool:
    """Whether a registered method runs on a model family (its class's ``FAMILIES``)."""
    return family in method_class(method).FAMILIES


def family_support(method: str, family: str) -> str | None:
    """'release' | 'ours' for a supported (method, family) pair, None if unsupported."""
    return method_class(method).FAMILIES.get(family)


def check_supported(method: str, family: str) -> None:
    """One-line refusal of an unsupported method × family pair (a run-spec / CLI error, never mid-run)."""
    families = method_class(method).FAMILIES
    if family not in families:
        raise ValueError(
            f"method {method!r} does not support model family {family!r} (supported: {', '.join(families)})"
        )


def check_configured(method: Any, family: str) -> None:
    """One-line refusal of a *configured* method on a family (a level may rule one out, e.g. SAFREE's
    ``paper`` LRA on SD3; Safe Denoiser's base must run there too)."""
    problem = method.family_error(family)
    if problem:
        raise ValueError(problem)


def build_method(
    name: str, level: str = "off", knob: float | None = None, overrides: dict | None = None, concept=None
):
    return method_class(name).from_level(level=level, knob=knob, overrides=overrides, concept=concept)
