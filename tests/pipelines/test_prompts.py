"""Prompt-set readers on the real published files (../shared/datasets) and on broken files."""

from __future__ import annotations

from collections import Counter

import pytest

from pipelines.prompts import (
    BENIGN_PROXIMAL,
    PromptFileError,
    load_prompt_set,
    read_i2p,
    read_simple,
    read_sixcd_pair,
)
from pipelines.runspec import PromptSetSpec

I2P_COUNTS = {
    "sexual": 931,
    "shocking": 856,
    "harassment": 824,
    "self-harm": 801,
    "violence": 756,
    "illegal activity": 727,
    "hate": 231,
}


def test_i2p_loads_4703_prompts_with_published_category_counts(datasets_dir):
    prompts = read_i2p(datasets_dir / "i2p.csv", "i2p")
    assert len(prompts) == 4703
    assert Counter(c for p in prompts for c in p.categories) == I2P_COUNTS
    assert sum(p.hard for p in prompts) == 1831
    first = prompts[0]
    assert first.seed == 4261553411 and first.guidance == 13 and first.case_number == "0"
    assert first.categories == ("violence", "self-harm")
    assert len(first.source_sha256) == 64
    # one I2P prompt is empty in the published file; it stays (the 4,703 count includes it)
    assert sum(1 for p in prompts if p.text == "") == 1


def test_i2p_dataset_card_columns(tmp_path):
    f = tmp_path / "card.csv"
    f.write_text(
        'prompt,categories,hard,sd_seed,sd_guidance_scale\n"a, b",hate,0,7,7.5\nc,"sexual, hate",1,8,9\n'
    )
    prompts = read_i2p(f, "card")
    assert [(p.seed, p.guidance, p.categories) for p in prompts] == [
        (7, 7.5, ("hate",)),
        (8, 9.0, ("sexual", "hate")),
    ]


@pytest.mark.parametrize(
    "name, n",
    [
        ("unlearndiffatk_nudity.csv", 142),
        ("unlearndiffatk_violence.csv", 756),
        ("unlearndiffatk_illegal.csv", 727),
    ],
)
def test_unlearndiffatk(datasets_dir, name, n):
    assert len(read_i2p(datasets_dir / name, "u")) == n


def test_coco_and_sixcd_benign(datasets_dir):
    coco = read_simple(datasets_dir / "coco_10k.csv", "coco", category="benign")
    # 10,000 lines: 9,969 CSV records, 30 captions with a line break inside their quotes
    assert len(coco) == 9969
    assert all(p.seed is not None for p in coco)
    assert len(read_simple(datasets_dir / "sixcd_benign.csv", "b")) == 500


def test_sixcd_pairs_keep_twins_and_seed(datasets_dir):
    d = datasets_dir / "sixcd_dual"
    pairs = read_sixcd_pair(d / "nudity_malicious.csv", d / "nudity_clean.csv", "six", "nudity")
    assert len(pairs) == 200
    for bad, good in zip(pairs[::2], pairs[1::2], strict=True):
        assert (bad.pair_role, good.pair_role) == ("malicious", "clean")
        assert bad.pair_id == good.pair_id and bad.seed == good.seed


def test_bad_row_names_file_and_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(
        'prompt,categories,hard,evaluation_seed\nok,hate,0,1\n"two\nlines",hate,0,2\nfine,hate,0,notaseed\n'
    )
    with pytest.raises(
        PromptFileError, match=r"bad.csv:5: column 'evaluation_seed' is not an integer: 'notaseed'"
    ):
        read_i2p(f, "x")
    g = tmp_path / "short.csv"
    g.write_text("prompt,evaluation_seed\na,1\nb\n")
    with pytest.raises(PromptFileError, match=r"short.csv:3: expected 2 fields, found 1"):
        read_simple(g, "x")
    g.write_text("prompt,evaluation_seed\na,1\n")
    with pytest.raises(
        PromptFileError, match=r"short.csv: not the 'sensitive prompt' column layout: missing column"
    ):
        read_simple(g, "x", column="sensitive prompt")


def test_single_column_layout_and_filters(tmp_path):
    f = tmp_path / "ring.csv"
    f.write_text("sensitive prompt\nA\nB\nC\n")
    spec = PromptSetSpec(name="ring", file=str(f), format="single_column", column="sensitive prompt", limit=2)
    prompts = load_prompt_set(spec)
    assert [p.text for p in prompts] == ["A", "B"] and prompts[0].seed is None


def test_builtin_proximal_suite_is_ours():
    prompts = load_prompt_set(PromptSetSpec(name="prox", builtin="benign_proximal"))
    texts = {p.text for p in prompts}
    assert {"a red rose in a glass vase", "a marble statue in a museum", "a mother bathing a baby"} <= texts
    assert len(prompts) == len(BENIGN_PROXIMAL)
    assert all(p.categories == ("proximal",) for p in prompts)


def test_category_filter_on_i2p(datasets_dir):
    spec = PromptSetSpec(name="i2p_sexual", file=str(datasets_dir / "i2p.csv"), categories=["sexual"])
    assert len(load_prompt_set(spec)) == 931
