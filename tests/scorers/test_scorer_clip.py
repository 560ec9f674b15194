"""Q16 and CLIP score on a tiny random CLIP (built from configs), plus the one-line errors."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from pipelines.scorers import ScoreInput, ScorerError, get_scorer

TINY_PROJ = 16  # projection_dim of the tiny_clip_dir fixture (tests/scorers/conftest.py)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def _images(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def clip_score(tiny_clip_dir):
    return get_scorer("clip_score", clip_model=str(tiny_clip_dir))


def _reference_features(folder, images, texts):
    """Independent path: CLIPModel forward (its own normalised embeddings) on the processor's pixels."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # pragma: no cover
        from transformers import CLIPImageProcessor as Processor
    model = CLIPModel.from_pretrained(str(folder)).eval()
    px = Processor.from_pretrained(str(folder))(
        images=[Image.fromarray(i) for i in images], return_tensors="pt"
    )
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    enc = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px["pixel_values"]
        )
    return out.image_embeds.numpy().astype(np.float64), out.text_embeds.numpy().astype(np.float64)


# --------------------------------------------------------------------------- clip_score


def test_clip_score_matches_independent_computation(clip_score, tiny_clip_dir):
    images = _images()
    prompts = ["a photo of a cat", "a red square", "", "nude painting of a woman"]
    rows = clip_score.score(
        [ScoreInput(f"g{i}", im, prompt=p) for i, (im, p) in enumerate(zip(images, prompts, strict=True))]
    )
    img, txt = _reference_features(tiny_clip_dir, images, prompts)
    cos = (img * txt).sum(axis=1)
    assert [r.metric for r in rows] == ["clip_score"] * 4
    for r, c in zip(rows, cos, strict=True):
        d = json.loads(r.details)
        assert d["cos"] == pytest.approx(c, abs=1e-5)
        assert r.value == pytest.approx(100 * max(c, 0.0), abs=1e-3)  # clipped at 0
        assert (
            d["clip_model"] == str(tiny_clip_dir) and d["truncated"] is False and d["tokenizer"] == "folder"
        )
    assert rows[0].model_sha256 and len(rows[0].model_sha256) == 64


def test_clip_score_clips_negative_cosine(tiny_clip_dir):
    # flipping the text projection's sign turns every cosine negative: every score must clip to exactly 0
    sc = get_scorer("clip_score", clip_model=str(tiny_clip_dir))
    items = [ScoreInput(f"g{i}", im, prompt=f"prompt {i}") for i, im in enumerate(_images(3))]
    before = [json.loads(r.details)["cos"] for r in sc.score(items)]
    sc.clip.model.text_projection.weight.data.mul_(-1)
    rows = sc.score(items)
    after = [json.loads(r.details)["cos"] for r in rows]
    assert after == pytest.approx([-c for c in before], abs=1e-6)
    assert all(c > 0 for c in before)  # so all after < 0
    assert [r.value for r in rows] == [0.0, 0.0, 0.0]


def test_long_prompt_is_truncated_and_flagged(clip_score):
    row = clip_score.score([ScoreInput("g", _images(1)[0], prompt="word " * 120)])[0]
    assert json.loads(row.details)["truncated"] is True


def test_builtin_tokenizer_fallback(tiny_clip_dir, tmp_path):
    folder = tmp_path / "clip_no_tok"
    folder.mkdir()
    for f in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copy(tiny_clip_dir / f, folder / f)
    sc = get_scorer("clip_score", clip_model=str(folder))
    a = sc.score([ScoreInput("g", _images(1)[0], prompt="a photo of a cat")])[0]
    b = get_scorer("clip_score", clip_model=str(tiny_clip_dir)).score(
        [ScoreInput("g", _images(1)[0], prompt="a photo of a cat")]
    )[0]
    assert json.loads(a.details)["tokenizer"] == "builtin"
    assert a.value == pytest.approx(b.value, abs=1e-4)  # same vocabulary, same ids


def test_missing_clip_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SAFEAUDIT_CLIP_MODEL", raising=False)
    with pytest.raises(ScorerError) as exc:
        get_scorer("clip_score", clip_model="safeaudit-test/not-a-cached-clip")
    msg = _one_line(exc)
    assert "not-a-cached-clip" in msg and "SAFEAUDIT_CLIP_MODEL" in msg
    with pytest.raises(ScorerError) as exc:
        get_scorer("clip_score", clip_model=str(tmp_path / "nowhere" / "clip"))
    _one_line(exc)
    empty = tmp_path / "empty_clip"
    empty.mkdir()
    with pytest.raises(ScorerError) as exc:
        get_scorer("clip_score", clip_model=str(empty))
    assert "config.json" in _one_line(exc)


# --------------------------------------------------------------------------- q16


def _prompt_file(tmp_path, arr: np.ndarray, name: str = "prompts.npy"):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, arr)
    else:
        path.write_bytes(pickle.dumps(arr))
    return path


def test_q16_softmax_of_100_cos_and_argmax(tiny_clip_dir, tmp_path):
    images = _images(3)
    img, _ = _reference_features(tiny_clip_dir, images, [""] * 3)
    rng = np.random.default_rng(1)
    # class 1 ("inappropriate") is image 0's own embedding (scaled, un-normalised); class 0 a random vector
    prompts = np.stack([rng.normal(size=TINY_PROJ), 3.0 * img[0]])
    sc = get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=_prompt_file(tmp_path, prompts))
    rows = sc.score([ScoreInput(f"g{i}", im) for i, im in enumerate(images)])
    assert [r.metric for r in rows] == ["inappropriate_prob", "label"] * 3
    pn = prompts / np.linalg.norm(prompts, axis=1, keepdims=True)
    for i in range(3):
        cos = img[i] @ pn.T
        expect = np.exp(100 * cos) / np.exp(100 * cos).sum()
        prob, label = rows[2 * i], rows[2 * i + 1]
        assert json.loads(prob.details)["cos"] == pytest.approx(cos.tolist(), abs=1e-5)
        assert prob.value == pytest.approx(expect[1], abs=1e-4)
        assert label.value == float(np.argmax(expect))
    assert rows[0].value > 0.999 and rows[1].value == 1.0  # the image that *is* the inappropriate prompt

    swapped = get_scorer(
        "q16",
        clip_model=str(tiny_clip_dir),
        prompts_path=_prompt_file(tmp_path, prompts[::-1].copy(), "s.npy"),
    )
    row = swapped.score([ScoreInput("g0", images[0])])
    assert row[0].value < 0.001 and row[1].value == 0.0


def test_q16_reads_the_original_pickle_format(tiny_clip_dir, tmp_path):
    arr = np.random.default_rng(2).normal(size=(2, TINY_PROJ)).astype(np.float16)  # prompts.p is float16
    a = get_scorer(
        "q16", clip_model=str(tiny_clip_dir), prompts_path=_prompt_file(tmp_path, arr, "prompts.p")
    )
    b = get_scorer(
        "q16", clip_model=str(tiny_clip_dir), prompts_path=_prompt_file(tmp_path, arr.astype(np.float32))
    )
    # a numpy-1, protocol-2 pickle (numpy.core module path, bytes via _codecs.encode) reads the same
    old_style = tmp_path / "old.p"
    old_style.write_bytes(
        pickle.dumps(arr, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    )
    c = get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=old_style)
    im = _images(1)[0]
    assert a.score([ScoreInput("g", im)])[0].value == pytest.approx(
        b.score([ScoreInput("g", im)])[0].value, abs=1e-6
    )
    assert c.score([ScoreInput("g", im)])[0].value == a.score([ScoreInput("g", im)])[0].value
    assert a.model_sha256 != b.model_sha256  # different prompt files -> different identity
    assert a.clip_sha256 == b.clip_sha256


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_q16_refuses_non_numpy_pickles(tiny_clip_dir, tmp_path):
    bad = tmp_path / "prompts.p"
    bad.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=bad)
    assert "refusing" in _one_line(exc)


def test_q16_missing_or_wrong_files_are_one_line(tiny_clip_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SAFEAUDIT_Q16_PROMPTS", raising=False)
    monkeypatch.setenv("SAFEAUDIT_MODELS", str(tmp_path / "models"))
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model=str(tiny_clip_dir))
    msg = _one_line(exc)
    assert "prompts.p" in msg and "SAFEAUDIT_Q16_PROMPTS" in msg
    wrong_dim = _prompt_file(tmp_path, np.ones((2, TINY_PROJ + 1)))
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=wrong_dim)
    assert "projects to" in _one_line(exc)
    wrong_rows = _prompt_file(tmp_path, np.ones((3, TINY_PROJ)), "three.npy")
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=wrong_rows)
    assert "(2, D)" in _one_line(exc)
    zero_row = _prompt_file(tmp_path, np.stack([np.ones(TINY_PROJ), np.zeros(TINY_PROJ)]), "zero.npy")
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model=str(tiny_clip_dir), prompts_path=zero_row)
    assert "non-zero" in _one_line(exc)
    good = _prompt_file(tmp_path, np.ones((2, TINY_PROJ)), "good.npy")
    with pytest.raises(ScorerError) as exc:
        get_scorer("q16", clip_model="safeaudit-test/not-a-cached-clip", prompts_path=good)
    assert "not in the Hugging Face cache" in _one_line(exc)
