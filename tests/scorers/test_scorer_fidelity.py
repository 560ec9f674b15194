"""Fidelity against the same-seed baseline (SSIM / PSNR / MSE, optional LPIPS) and degenerate images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipelines.scorers import ScoreInput, ScorerError, get_scorer
from pipelines.scorers.fidelity import PSNR_CAP_DB, psnr, ssim, ssim_reference


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float64) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _by_metric(rows):
    return {r.metric: r for r in rows}


@pytest.fixture(scope="module")
def fidelity():
    return get_scorer("fidelity")


def test_identical_images(fidelity, astronaut):
    rows = _by_metric(fidelity.score([ScoreInput("g", astronaut, baseline_image=astronaut.copy())]))
    assert set(rows) == {"ssim", "psnr", "mse"}  # no lpips without weights
    assert rows["ssim"].value == pytest.approx(1.0, abs=1e-12)
    assert rows["mse"].value == 0.0
    assert rows["psnr"].value == PSNR_CAP_DB == 100.0
    assert json.loads(rows["psnr"].details)["capped"] is True
    assert "not configured" in json.loads(rows["ssim"].details)["lpips"]
    assert rows["ssim"].model_sha256 is None


def test_noise_lowers_ssim_and_psnr_monotonically(fidelity, astronaut):
    vals = []
    for sigma in (2, 10, 40):
        rows = _by_metric(
            fidelity.score([ScoreInput("g", _noisy(astronaut, sigma), baseline_image=astronaut)])
        )
        vals.append((rows["ssim"].value, rows["psnr"].value))
        assert json.loads(rows["psnr"].details)["capped"] is False
    ssims, psnrs = zip(*vals, strict=True)
    assert 1.0 > ssims[0] > ssims[1] > ssims[2] > 0.0
    assert psnrs[0] > psnrs[1] > psnrs[2]
    assert ssims[2] < 0.6
    # PSNR of Gaussian noise sigma=10 is about 20*log10(255/10) = 28.1 dB (clipping makes it a little higher)
    assert 27.5 < psnrs[1] < 29.0


def test_ssim_matches_scikit_image(astronaut):
    skm = pytest.importorskip("skimage.metrics")
    other = _noisy(astronaut, 15, seed=4)
    ref = skm.structural_similarity(
        astronaut,
        other,
        channel_axis=2,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(astronaut, other) == pytest.approx(ref, abs=1e-10)
    gray_a, gray_b = astronaut[..., 0], other[..., 0]
    ref_gray = skm.structural_similarity(
        gray_a, gray_b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(gray_a, gray_b) == pytest.approx(ref_gray, abs=1e-10)


def test_psnr_hand_checked_on_tiny_fixture():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # one value off by 10 among 48: MSE = 100 / 48
    value, capped = psnr(a, b)
    assert not capped
    assert value == pytest.approx(10 * math.log10(255**2 * 48 / 100), abs=1e-9)  # 10 log10(31212) = 44.943 dB
    assert value == pytest.approx(44.943, abs=1e-3)
    skm = pytest.importorskip("skimage.metrics")
    assert value == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_tiny_images_get_no_ssim_but_psnr(fidelity):
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    b[1, 1] = 255
    rows = _by_metric(fidelity.score([ScoreInput("g", a, baseline_image=b)]))
    assert rows["ssim"].value is None and "smaller" in json.loads(rows["ssim"].details)["skipped"]
    assert rows["mse"].value == pytest.approx(255**2 * 3 / 48)


def test_no_baseline_no_rows_and_shape_mismatch(fidelity, astronaut):
    assert fidelity.score([ScoreInput("g", astronaut)]) == []
    rows = fidelity.score([ScoreInput("g", astronaut, baseline_image=astronaut[:128])])
    assert [r.metric for r in rows] == ["ssim", "psnr", "mse"]
    assert all(r.value is None and "differs" in json.loads(r.details)["skipped"] for r in rows)


def _fake_lpips_weights(tmp_path):
    import torch

    torch.manual_seed(0)
    shapes = {
        0: (64, 3, 11, 11),
        3: (192, 64, 5, 5),
        6: (384, 192, 3, 3),
        8: (256, 384, 3, 3),
        10: (256, 256, 3, 3),
    }
    backbone = {}
    for i, s in shapes.items():
        backbone[f"features.{i}.weight"] = torch.randn(s) * 0.05
        backbone[f"features.{i}.bias"] = torch.zeros(s[0])
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision extras are ignored
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(lin, tmp_path / "alex.pth")
    return tmp_path / "alexnet.pth", tmp_path / "alex.pth"


def test_lpips_when_weights_are_configured(tmp_path, astronaut):
    backbone, lin = _fake_lpips_weights(tmp_path)
    sc = get_scorer("fidelity", lpips_backbone=backbone, lpips_lin=lin)
    same = _by_metric(sc.score([ScoreInput("g", astronaut, baseline_image=astronaut)]))
    small = _by_metric(sc.score([ScoreInput("g", _noisy(astronaut, 5), baseline_image=astronaut)]))
    big = _by_metric(sc.score([ScoreInput("g", _noisy(astronaut, 50), baseline_image=astronaut)]))
    assert same["lpips"].value == pytest.approx(0.0, abs=1e-7)
    assert 0 < small["lpips"].value < big["lpips"].value
    assert len(same["lpips"].model_sha256) == 64


def test_lpips_half_configured_is_one_line(tmp_path):
    backbone, _ = _fake_lpips_weights(tmp_path)
    with pytest.raises(ScorerError) as exc:
        get_scorer("fidelity", lpips_backbone=backbone)
    assert "\n" not in str(exc.value) and "lpips_lin" in str(exc.value)


# --------------------------------------------------------------------------- degenerate


@pytest.fixture(scope="module")
def degenerate():
    return get_scorer("degenerate")


def _flags(scorer, img):
    rows = _by_metric(scorer.score([ScoreInput("g", img)]))
    return {k: r.value for k, r in rows.items()}


def test_black_frame(degenerate):
    v = _flags(degenerate, np.zeros((64, 64, 3), np.uint8))
    assert v == {"is_black": 1.0, "is_constant": 1.0, "pixel_std": 0.0, "mean_intensity": 0.0}


def test_near_black_noise_is_black_but_not_constant(degenerate):
    img = np.random.default_rng(0).integers(0, 4, (64, 64, 3), dtype=np.uint8)  # JPEG-ish residue
    v = _flags(degenerate, img)
    assert v["is_black"] == 1.0 and v["is_constant"] == 0.0
    assert v["mean_intensity"] == pytest.approx(img.mean())


def test_constant_grey(degenerate):
    v = _flags(degenerate, np.full((32, 48, 3), 128, np.uint8))
    assert v["is_black"] == 0.0 and v["is_constant"] == 1.0 and v["mean_intensity"] == 128.0


def test_noise_and_dark_photo_are_not_degenerate(degenerate, astronaut):
    noise = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    v = _flags(degenerate, noise)
    assert v["is_black"] == 0.0 and v["is_constant"] == 0.0
    assert v["pixel_std"] == pytest.approx(math.sqrt((256**2 - 1) / 12), rel=0.01)  # discrete uniform: 73.9
    dark = np.zeros((64, 64, 3), np.uint8)
    dark[10:12, 10:12] = 255  # a few highlights in a black frame: mean < 2 but not a blank frame
    v = _flags(degenerate, dark)
    assert v["mean_intensity"] < 2 and v["is_black"] == 0.0 and v["is_constant"] == 0.0
    assert _flags(degenerate, astronaut)["is_black"] == 0.0


def test_nan_float_image(degenerate):
    img = np.full((16, 16, 3), np.nan, np.float32)
    rows = _by_metric(degenerate.score([ScoreInput("g", img)]))
    assert rows["is_black"].value == 1.0 and rows["is_constant"].value == 1.0
    assert json.loads(rows["is_constant"].details)["nonfinite"] == 16 * 16 * 3
    half = np.zeros((16, 16, 3), np.float32)
    half[:8] = 1.0  # float image in 0..1
    assert _flags(degenerate, half)["mean_intensity"] == pytest.approx(127.5)


@pytest.mark.parametrize("shape", [(512, 512, 3), (64, 64, 3), (11, 11, 3), (37, 23, 3), (40, 50)])
def test_ssim_equals_the_earlier_scipy_implementation(astronaut, shape):
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    base = np.asarray(Image.fromarray(astronaut).resize(shape[1::-1]))
    base = base if len(shape) == 3 else base[..., 1]
    for other in (_noisy(base, 8, seed=1), _noisy(base, 60, seed=2), rng.integers(0, 256, shape, np.uint8)):
        assert ssim(base, other) == pytest.approx(ssim_reference(base, other), abs=1e-12)
