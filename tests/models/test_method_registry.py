"""Every line of the method registry imports; a broken line fails loudly, naming itself."""

from __future__ import annotations

import pytest

from models import registry
from models.method import SafetyMethod


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_entry_imports_its_class(name):
    cls = registry.method_class(name)
    module, _, attr = registry.METHODS[name].partition(":")
    assert issubclass(cls, SafetyMethod) and cls.__module__ == module and cls.__name__ == attr
    assert cls.LEVELS and cls.FAMILIES and "sd" in cls.FAMILIES


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("models.sldd:SLD", "No module named 'models.sldd'"),  # a typo in the module
        ("models.sld:SDL", "has no attribute 'SDL'"),  # a typo in the class
    ],
)
def test_a_broken_entry_names_itself_in_one_line(monkeypatch, target, reason):
    monkeypatch.setitem(registry.METHODS, "sld", target)
    with pytest.raises(registry.RegistryError) as info:
        registry.method_class("sld")
    message = str(info.value)
    assert "\n" not in message and "'sld'" in message and target in message and reason in message


def test_a_broken_entry_stops_spec_validation_with_the_entry_named(monkeypatch):
    """Not a raw ModuleNotFoundError from deep inside pydantic: the registry line is named."""
    from pipelines.runspec import parse_spec

    monkeypatch.setitem(registry.METHODS, "sld", "models.sldd:SLD")
    spec = {
        "name": "t",
        "model": {"id": "builtin:tiny"},
        "prompt_sets": [{"name": "benign", "builtin": "benign_core", "limit": 1, "role": "benign"}],
        "methods": [{"name": "baseline"}, {"name": "sld", "levels": ["medium"]}],
        "scorers": ["degenerate"],
    }
    with pytest.raises(registry.RegistryError, match=r"method 'sld' -> 'models.sldd:SLD' does not import"):
        parse_spec(spec)


def test_an_unknown_name_is_a_user_error():
    with pytest.raises(registry.UnknownMethodError, match="unknown method 'sldx'"):
        registry.method_class("sldx")
