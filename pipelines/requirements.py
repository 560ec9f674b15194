"""Data requirements of a run spec's methods, checked at validation, before anything is planned or generated.

A method point whose level needs data the concept pack lacks (the Safe Denoiser's negation set for this
model and size, the dual-latent safe embedding, SAFREE's keywords, the negative-prompt lists) is a one-line
``RunSpecError`` naming the method, the level, the concept pack and what to supply. Where a reference can
name several versions (a negation set by name), the spec is *resolved*: the method entry's overrides pin the
exact version (``negation_set: name@hash``), so the run id, every generation id and the worker all see the
same set, and a rebuilt set is a new run, never a silent swap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.runspec import RunSpec


def _model_key(model_id: str) -> str:
    from models.negation import model_key

    return model_key(model_id)


def check_data(spec: RunSpec, source: str = "<spec>") -> RunSpec:
    """Return ``spec`` with data references pinned, or raise RunSpecError (one line) for a missing datum."""
    from models.concepts import ConceptPackError, load_pack
    from models.registry import build_method
    from pipelines.runspec import RunSpecError

    try:
        pack = load_pack(spec.concept)
    except ConceptPackError as exc:
        raise RunSpecError(f"{source}: concept: {exc}") from None
    targets = []  # (model id, key, height, width) of every model the run samples
    for model in spec.all_models:
        sampler = spec.sampler_for(model)
        targets.append((model.id, _model_key(model.id), sampler.height, sampler.width))
    methods = []
    for i, m in enumerate(spec.methods):
        pins: dict[str, Any] = {}
        points = [(lvl, None) for lvl in m.levels] + [("off", float(k)) for k in m.knob]
        for level, knob in points:
            where = f"{source}: methods[{i}] {m.name} level {level if knob is None else f'knob={knob:g}'}"
            for model_id, key, h, w in targets:
                try:
                    method = build_method(m.name, level, knob=knob, overrides=dict(m.overrides), concept=pack)
                    problem = method.missing_data(model_id, h, w)
                    pin = (
                        method.pin_data(key, h, w) if problem is None and hasattr(method, "pin_data") else {}
                    )
                except ValueError as exc:  # a bad override value, a missing pack field
                    problem, pin = str(exc).splitlines()[0], {}
                if problem:
                    raise RunSpecError(
                        f"{where}: {problem}" + (f" (model {model_id})" if len(targets) > 1 else "")
                    )
                clash = {k: (pins[k], v) for k, v in pin.items() if k in pins and pins[k] != v}
                if clash:  # one method entry pins one version; two models need two
                    k, (a, b) = next(iter(clash.items()))
                    raise RunSpecError(
                        f"{where}: the run's models need different {k} versions ({a}, {b}); "
                        f"audit them in separate runs or give each its own method entry with a label"
                    )
                pins.update(pin)
        methods.append(m.model_copy(update={"overrides": {**m.overrides, **pins}}) if pins else m)
    return spec.model_copy(update={"methods": methods})
