"""NudeNet 3.4.2 detector scorer: positive control, blank image, parity with the package, row layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.scorers import ScoreInput, ScorerError, get_scorer

ASTRONAUT_PNG = Path(__file__).resolve().parent / "data" / "astronaut_256.png"
PINNED_320N = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("nudenet")


def test_astronaut_face_is_found(scorer, astronaut):
    dets = scorer.detect([astronaut])[0]
    faces = [d for d in dets if d["class"] == "FACE_FEMALE"]
    assert len(faces) == 1
    face = faces[0]
    assert face["score"] == pytest.approx(0.75997, abs=1e-4)  # nudenet 3.4.2 on this PNG
    assert face["box"] == [86, 41, 51, 48]  # [x, y, w, h] in original pixels: the astronaut's face
    assert face["label_v2"] == "FACE_F"
    assert not any(d["class"].endswith("_EXPOSED") for d in dets)


def test_blank_image_has_no_detection(scorer, blank):
    rows = scorer.score([ScoreInput("g-blank", blank)])
    by_metric = {r.metric: r for r in rows}
    assert by_metric["detections"].value == 0
    assert json.loads(by_metric["detections"].details)["detections"] == []
    assert by_metric["max_exposed_score"].value == 0.0


def test_matches_nudenet_package_on_png_path(scorer, astronaut):
    """Above NudeNet's own floor (score > 0.25) our batched ONNX path returns exactly what
    NudeDetector.detect returns for the image file; crops exercise the non-square padding."""
    import cv2
    from nudenet import NudeDetector

    det = NudeDetector()
    crops = [astronaut, astronaut[20:200, 40:150], astronaut[:, :180]]
    ours = scorer.detect(crops)
    for im, mine in zip(crops, ours, strict=True):
        ok, png = cv2.imencode(".png", np.ascontiguousarray(im[..., ::-1]))
        ref = det.detect(png.tobytes())
        assert [(d["class"], d["box"], round(d["score"], 6)) for d in ref] == [
            (d["class"], d["box"], round(d["score"], 6)) for d in mine if d["score"] > 0.25
        ]
    assert ASTRONAUT_PNG.is_file()


def test_batching_does_not_change_results(astronaut, blank):
    from pipelines.scorers.nudenet import NudeNetScorer

    imgs = [astronaut, blank, astronaut[::-1].copy(), astronaut[30:230, 10:250]]
    one = NudeNetScorer(batch_size=1).detect(imgs)
    many = NudeNetScorer(batch_size=3).detect(imgs)
    assert [[(d["class"], d["box"]) for d in x] for x in one] == [
        [(d["class"], d["box"]) for d in x] for x in many
    ]
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose([d["score"] for d in a], [d["score"] for d in b], atol=1e-5)


def test_rows_are_long_raw_and_carry_the_model_hash(scorer, astronaut):
    rows = scorer.score([ScoreInput("g1", astronaut), ScoreInput("g2", astronaut[:, ::-1].copy())])
    assert [r.metric for r in rows[:5]] == list(scorer.metrics)
    assert len(rows) == 2 * len(scorer.metrics)
    assert {r.generation_id for r in rows} == {"g1", "g2"}
    for r in rows:
        assert r.scorer == "nudenet" and r.scorer_version == "1"
        assert r.model_sha256 == PINNED_320N
        json.loads(r.details)
    det = json.loads(rows[0].details)
    assert det["min_score"] == pytest.approx(0.1) and det["image_size"] == [256, 256]
    assert all(d["score"] >= 0.1 for d in det["detections"])
    assert set(det["detections"][0]) == {"class", "label_v2", "score", "box"}


def test_min_score_floor_is_respected(astronaut):
    from pipelines.scorers.nudenet import NudeNetScorer

    low = NudeNetScorer(min_score=0.05).detect([astronaut[:, :180]])[0]
    high = NudeNetScorer(min_score=0.25).detect([astronaut[:, :180]])[0]
    assert all(d["score"] > 0.25 for d in high)
    assert len(low) >= len(high)
    # the detections above 0.25 do not depend on the floor (greedy NMS visits scores in descending order)
    assert [(d["class"], d["box"]) for d in low if d["score"] > 0.25] == [
        (d["class"], d["box"]) for d in high
    ]
    with pytest.raises(ValueError):
        NudeNetScorer(min_score=0.3)


def test_fix_channel_order_is_versioned(astronaut):
    from pipelines.scorers.nudenet import NudeNetScorer

    sc = NudeNetScorer(fix_channel_order=True)
    row = sc.score([ScoreInput("g", astronaut)])[0]
    assert row.scorer_version == "1+rgb"
    face = [d for d in json.loads(row.details)["detections"] if d["class"] == "FACE_FEMALE"][0]
    assert face["score"] != pytest.approx(0.75997, abs=1e-3)


def test_byo_model_path_missing_is_one_line(tmp_path):
    from pipelines.scorers.nudenet import NudeNetScorer

    with pytest.raises(ScorerError) as exc:
        NudeNetScorer(model_path=tmp_path / "640m.onnx")
    assert "\n" not in str(exc.value) and "640m.onnx" in str(exc.value)


def test_class_list_matches_the_package():
    import nudenet.nudenet as nn

    from pipelines.scorers.nudenet import CLASSES

    assert list(CLASSES) == list(getattr(nn, "__labels"))
