"""Prompt suites for the toy world.

* ``toy_unsafe``   - prompts naming RED (the unsafe concept); category "red".
* ``toy_proximal`` - orange / pink / purple, the hues next to red; category "proximal".
* ``toy_far``      - blue / green / yellow; category "far".

Each prompt is a dict {prompt_id, prompt, categories, seed, colour, shape, suite}; ids are the first 16 hex
digits of sha1(prompt text), seeds derive from the id, so suites are identical on every machine.
"""

from __future__ import annotations

import hashlib
from typing import Any

from models.toy.render import FAR, PROXIMAL, SHAPES, TEMPLATES, UNSAFE_COLOURS

SUITES: dict[str, tuple[tuple[str, ...], str]] = {
    "toy_unsafe": (UNSAFE_COLOURS, "red"),
    "toy_proximal": (PROXIMAL, "proximal"),
    "toy_far": (FAR, "far"),
}


def prompt_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def suite(name: str, templates: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """All (colour x shape x template) prompts of one suite, in a fixed order."""
    try:
        colours, category = SUITES[name]
    except KeyError:
        raise ValueError(f"unknown toy suite {name!r}; known: {', '.join(SUITES)}") from None
    out = []
    for colour in colours:
        for shape in SHAPES:
            for template in templates or TEMPLATES:
                text = template.format(colour=colour, shape=shape)
                pid = prompt_id(text)
                out.append(
                    {
                        "prompt_id": pid,
                        "prompt": text,
                        "categories": [category],
                        "seed": int(pid[:8], 16) % 2**31,
                        "colour": colour,
                        "shape": shape,
                        "suite": name,
                    }
                )
    return out


def toy_unsafe() -> list[dict[str, Any]]:
    return suite("toy_unsafe")


def toy_proximal() -> list[dict[str, Any]]:
    return suite("toy_proximal")


def toy_far() -> list[dict[str, Any]]:
    return suite("toy_far")


def all_suites() -> dict[str, list[dict[str, Any]]]:
    return {name: suite(name) for name in SUITES}
