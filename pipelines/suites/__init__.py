"""Built-in evaluation suites, written by the project: hard negatives, graded implicit prompts, languages.

The prompts live in the versioned YAML files beside this module (``hard_negatives.yaml``, ``implicit.yaml``,
``multilingual.yaml`` for the seven I2P categories; ``toy.yaml`` for the toy world); docs/SUITES.md says
where each idea comes from. Each loader returns rows for ``pipelines.prompts``: text, categories (how the
marts read the prompt's role) and ``meta`` tags, which the ``int_prompt_tags`` view turns into rows:

* ``border``   — the unsafe category a hard negative sits next to (role proximal);
* ``grade``    — ``named`` | ``synonym`` | ``described``: how explicitly an unsafe prompt names its concept;
* ``language`` — ISO 639-1 code of a multilingual variant (``en`` for the original);
* ``item``     — ties the grades / languages of one prompt together; ``suite``, ``suite_version`` always.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

SUITES_DIR = Path(__file__).resolve().parent
GRADES = ("named", "synonym", "described")
HARD_NEGATIVE = "proximal"  # the category (and so the mart role) of a hard negative


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file."""


@cache
def suite_file(name: str) -> dict[str, Any]:
    """The parsed ``<name>.yaml`` (cached: the files are part of the code and versioned with it)."""
    path = SUITES_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "version" not in data:
        raise SuiteError(f"{path}: a suite file needs a mapping with 'version'")
    return data


ITEM_KEYS = {
    "implicit": {"item", *GRADES},
    "multilingual": {"item", "role", "category", "border"},
    "hard_negative": {"text", "kind"},
}


def _check_keys(item: dict[str, Any], allowed: set[str], source: str) -> None:
    """Unknown keys mean a mis-parsed line (an unquoted comma in a flow mapping splits a prompt)."""
    extra = set(item) - allowed
    if extra:
        raise SuiteError(f"{source}.yaml: item {item.get('item') or item}: unknown key(s) {sorted(extra)}")


def _row(text: str, categories: tuple[str, ...], suite: str, version: int, **tags: Any) -> dict[str, Any]:
    meta = {"suite": suite, "suite_version": version} | {k: v for k, v in tags.items() if v is not None}
    return {"prompt": text, "categories": list(categories), "meta": meta}


def hard_negatives(source: str = "hard_negatives", section: str | None = None) -> list[dict[str, Any]]:
    """Benign look-alikes, each tagged with the category it borders (and, in the toy world, its kind)."""
    data = suite_file(source)
    by_category = data[section] if section else data["categories"]
    suite = f"{data['name']}_hard_negatives" if section else data["name"]
    out = []
    for border, prompts in by_category.items():
        for p in prompts:
            if isinstance(p, dict):
                _check_keys(p, ITEM_KEYS["hard_negative"], source)
            text, kind = (p["text"], p.get("kind")) if isinstance(p, dict) else (p, None)
            out.append(_row(text, (HARD_NEGATIVE,), suite, data["version"], border=border, kind=kind))
    return out


def implicit(source: str = "implicit", section: str | None = None) -> list[dict[str, Any]]:
    """Unsafe prompts at three grades of explicitness per item, tagged with grade, item and category."""
    data = suite_file(source)
    by_category = data[section] if section else data["categories"]
    suite = f"{data['name']}_implicit" if section else data["name"]
    out = []
    for category, items in by_category.items():
        for it in items:
            _check_keys(it, ITEM_KEYS["implicit"], source)
            missing = [g for g in GRADES if not it.get(g)]
            if missing:
                raise SuiteError(
                    f"{source}.yaml: item {it.get('item')!r} lacks grade(s) {', '.join(missing)}"
                )
            for grade in GRADES:
                out.append(_row(it[grade], (category,), suite, data["version"], grade=grade, item=it["item"]))
    return out


def multilingual(role: str, source: str = "multilingual", section: str | None = None) -> list[dict[str, Any]]:
    """One prompt per (item, language) for the items of one role (``unsafe`` | ``hard_negative``)."""
    data = suite_file(source)
    block = data[section] if section else data
    suite = f"{data['name']}_multilingual" if section else data["name"]
    out = []
    for it in block["items"]:
        _check_keys(it, ITEM_KEYS["multilingual"] | set(block["languages"]), source)
        if it["role"] != role:
            continue
        for lang in block["languages"]:
            if not it.get(lang):
                raise SuiteError(f"{source}.yaml: item {it['item']!r} has no {lang!r} text")
            if role == "unsafe":
                cats, tags = (it["category"],), {"category": it["category"]}
            else:
                cats, tags = (HARD_NEGATIVE,), {"border": it["border"]}
            out.append(_row(it[lang], cats, suite, data["version"], language=lang, item=it["item"], **tags))
    return out


# built-in prompt-set name -> rows (pipelines.prompts.BUILTIN wraps these into Prompt objects)
LOADERS = {
    "suite_hard_negatives": lambda: hard_negatives(),
    "suite_implicit": lambda: implicit(),
    "suite_multilingual_unsafe": lambda: multilingual("unsafe"),
    "suite_multilingual_hard_negatives": lambda: multilingual("hard_negative"),
    "toy_hard_negatives": lambda: hard_negatives("toy", "hard_negatives"),
    "toy_implicit": lambda: implicit("toy", "implicit"),
    "toy_multilingual_unsafe": lambda: multilingual("unsafe", "toy", "multilingual"),
    "toy_multilingual_hard_negatives": lambda: multilingual("hard_negative", "toy", "multilingual"),
}
TOY_SUITES = tuple(k for k in LOADERS if k.startswith("toy_"))
