"""The built-in evaluation suites (pipelines/suites): content rules, tags, the prompt-set loader, and a
tiny-model run of every suite run spec that lands tagged rows in the warehouse."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines import suites
from pipelines.prompts import BUILTIN, load_prompt_set
from pipelines.runspec import PromptSetSpec

REPO = Path(__file__).resolve().parents[2]
I2P_CATEGORIES = {"hate", "harassment", "violence", "self-harm", "sexual", "shocking", "illegal activity"}
SUITE_SPECS = [
    "suite_hard_negatives",
    "suite_implicit",
    "suite_multilingual",
    "toy_hard_negatives",
    "toy_implicit",
    "toy_multilingual",
]


def _load(key: str):
    return BUILTIN[key](key)


def test_hard_negatives_cover_every_i2p_category_with_25_or_more():
    prompts = _load("suite_hard_negatives")
    per_border = Counter(p.meta["border"] for p in prompts)
    assert set(per_border) == I2P_CATEGORIES
    assert min(per_border.values()) >= 25, per_border
    assert all(p.categories == ("proximal",) for p in prompts)  # benign side of the marts
    assert len({p.text for p in prompts}) == len(prompts)
    assert all(p.meta["suite"] == "hard_negatives" and p.meta["suite_version"] == 1 for p in prompts)


def test_toy_hard_negatives_stay_in_the_toy_vocabulary():
    from models.toy.render import COLOUR_NAMES, SHAPES

    prompts = _load("toy_hard_negatives")
    assert len(prompts) >= 25 and {p.meta["border"] for p in prompts} == {"red"}
    for p in prompts:
        words = p.text.replace(",", "").split()
        asked = [w for w in words if w in COLOUR_NAMES]
        assert asked and asked[0] != "red", p.text  # the colour asked for is never red
        assert any(s in words for s in SHAPES), p.text
        if p.meta["kind"] == "hue":
            assert asked[0] in ("orange", "pink", "purple")
    assert Counter(p.meta["kind"] for p in prompts)["lexical"] >= 8
    assert all(isinstance(p.seed, int) for p in prompts)  # toy suites carry their own seeds


def test_implicit_prompts_come_in_three_grades_per_item():
    for key, categories in (("suite_implicit", I2P_CATEGORIES), ("toy_implicit", {"red"})):
        prompts = _load(key)
        assert {p.categories[0] for p in prompts} == categories
        per_item = Counter(p.meta["item"] for p in prompts)
        assert set(per_item.values()) == {3}
        grades = Counter(p.meta["grade"] for p in prompts)
        assert set(grades) == set(suites.GRADES) and len(set(grades.values())) == 1
    # 'described' never uses the named word of its own item (I2P) / any red word (toy)
    toy = _load("toy_implicit")
    assert not [p.text for p in toy if p.meta["grade"] == "described" and "red " in f"{p.text} "]
    i2p = [p for p in _load("suite_implicit")]
    named = {p.meta["item"]: p.text for p in i2p if p.meta["grade"] == "named"}
    assert all(p.text != named[p.meta["item"]] for p in i2p if p.meta["grade"] != "named")


def test_multilingual_variants_in_four_other_languages_match_their_sources():
    hard = {p.text: p.meta["border"] for p in _load("suite_hard_negatives")}
    named = {p.text: p.categories[0] for p in _load("suite_implicit") if p.meta["grade"] == "named"}
    for key, role in (("suite_multilingual_unsafe", "unsafe"), ("suite_multilingual_hard_negatives", "hn")):
        prompts = _load(key)
        langs = Counter(p.meta["language"] for p in prompts)
        assert len(set(langs) - {"en"}) >= 4 and len(set(langs.values())) == 1
        for p in prompts:
            if p.meta["language"] == "en":  # the English text is the source suite's prompt
                source = named if role == "unsafe" else hard
                assert p.text in source, p.text
                assert source[p.text] == (p.categories[0] if role == "unsafe" else p.meta["border"])
        # the variants of an item differ from each other
        by_item: dict[str, set[str]] = {}
        for p in prompts:
            by_item.setdefault(p.meta["item"], set()).add(p.text)
        assert all(len(v) == len(langs) for v in by_item.values())
    toy = _load("toy_multilingual_unsafe") + _load("toy_multilingual_hard_negatives")
    assert {p.meta["language"] for p in toy} == {"en", "de", "fr", "es", "it"}


def test_a_mis_parsed_suite_line_fails_loudly(monkeypatch, tmp_path):
    # an unquoted comma in a flow mapping splits a prompt into a stray key: refused, not loaded
    bad = tmp_path / "broken.yaml"
    bad.write_text(
        "name: broken\nversion: 1\ncategories:\n  red:\n    - {item: x, named: a, b, synonym: c, described: d}\n"
    )
    monkeypatch.setattr(suites, "SUITES_DIR", tmp_path)
    suites.suite_file.cache_clear()
    try:
        with pytest.raises(suites.SuiteError, match="unknown key"):
            suites.implicit("broken")
    finally:
        suites.suite_file.cache_clear()


def test_suites_load_as_prompt_sets_with_their_tags():
    spec = PromptSetSpec(name="hn", builtin="suite_hard_negatives", role="proximal", limit=3)
    prompts = load_prompt_set(spec)
    assert len(prompts) == 3 and all(p.prompt_set == "hn" for p in prompts)
    row = prompts[0].as_row()
    assert '"border": "hate"' in row["meta"] and row["categories"] == ["proximal"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITE_SPECS)
def test_tiny_run_of_each_suite_spec_lands_tagged_rows(name, tmp_path):
    """Each shipped suite spec, on the random tiny model (2 steps, 5 prompts per set, two method points)."""
    from pipelines.runner import run_audit

    path = REPO / "runspecs" / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text())
    overrides = {
        "model": {"id": "builtin:tiny"},
        "sampler": {"scheduler": "ddim", "steps": 2, "height": 64, "width": 64},
        "prompt_sets": [ps | {"limit": 5} for ps in spec["prompt_sets"]],
        "images_per_prompt": 1,
        "methods": [{"name": "baseline"}, {"name": "negative_prompt", "levels": ["max"]}],
        "scorers": ["degenerate", "fidelity"] + (["toy_concept"] if spec["concept"] == "toy" else []),
        "batch_size": 10,
        "output": {"artifacts": str(tmp_path / "artifacts"), "warehouse": str(tmp_path / "wh.duckdb")},
    }
    summary = run_audit(path, quiet=True, overrides=overrides)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        tags = con.execute(
            "SELECT tag, count(DISTINCT tag_value), count(*) FROM int_prompt_tags WHERE run_id = ? GROUP BY tag",
            [summary["run_id"]],
        ).fetchall()
        rows = con.execute(
            "SELECT tag, prompt_role, method, sum(n_images) FROM mart_suite_tags WHERE run_id = ? "
            "GROUP BY ALL ORDER BY ALL",
            [summary["run_id"]],
        ).fetchall()
    finally:
        con.close()
    expected_tag = {"hard_negatives": "border", "implicit": "grade", "multilingual": "language"}[
        name.split("_", 1)[1]
    ]
    assert expected_tag in {t for t, _, _ in tags}, tags
    # every tagged prompt's image is in the mart, for both method points
    assert {m for _t, _r, m, _n in rows} == {"baseline", "negative_prompt"}
    tagged = {(t, r) for t, r, _m, _n in rows}
    assert any(t == expected_tag for t, _ in tagged)
    if expected_tag == "grade":
        grades = dict((t, n) for t, n, _ in tags)
        assert grades["grade"] == 3  # 5 prompts reach every grade (items come in threes)
    if expected_tag == "language":
        assert dict((t, n) for t, n, _ in tags)["language"] == 5
