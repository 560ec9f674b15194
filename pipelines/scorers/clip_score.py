"""CLIP score: 100 * max(cos(image embedding, text embedding), 0), the torchmetrics definition.

No package on PyPI ships CLIP weights, so this is a bring-your-own-weights scorer: ``clip_model`` (or
``$SAFEAUDIT_CLIP_MODEL``) is a local folder in Hugging Face layout or a hub id that is already in the
local Hugging Face cache (default ``openai/clip-vit-large-patch14``, torchmetrics' default). Nothing is
downloaded at run time; anything missing fails with one line. Store the model id with every number:
CLIP scores from different CLIP models are not comparable (docs/specs/evaluation.md 4.1), so it goes in the details
and the weights' sha256 is ``model_sha256``.

Text is tokenised with the folder's CLIP tokenizer (or, when the folder has none, the project's CLIP BPE
tokenizer from ``models.components``), truncated to 77 tokens keeping the end-of-text token; rows say
whether a prompt was truncated. Images go through the folder's ``preprocessor_config.json`` with the
PIL image processor (torchvision does not work here).

``load_clip`` is shared with the Q16 scorer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipelines.scorers import ScoreInput, Scorer, ScorerError, ScoreRow, Weights

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_ENV = "SAFEAUDIT_CLIP_MODEL"
MAX_TOKENS = 77
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class LoadedClip:
    model: Any  # transformers.CLIPModel, eval mode
    image_processor: Any
    tokenizer: Any | None
    model_id: str  # what the user named (folder or hub id)
    folder: Path
    weights_sha256: str
    tokenizer_source: str | None
    device: str

    @property
    def projection_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def image_features(self, images: list[np.ndarray], batch_size: int = 16):
        """Projected (un-normalised) image embeddings, float32 torch tensor (N, D) on CPU."""
        import torch
        from PIL import Image

        from pipelines.scorers.nudenet_classifier import as_rgb_uint8

        feats = []
        for i in range(0, len(images), batch_size):
            pil = [Image.fromarray(as_rgb_uint8(im)) for im in images[i : i + batch_size]]
            px = self.image_processor(images=pil, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                feats.append(_tensor(self.model.get_image_features(pixel_values=px)).float().cpu())
        return torch.cat(feats) if feats else torch.zeros((0, self.projection_dim))

    def text_features(self, texts: list[str], batch_size: int = 64):
        """Projected text embeddings (N, D) and, per text, whether it was truncated to 77 tokens."""
        import torch

        if self.tokenizer is None:
            raise ScorerError("CLIP tokenizer not loaded")
        feats, truncated = [], []
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            full = self.tokenizer(chunk, truncation=False)["input_ids"]
            truncated.extend(len(ids) > MAX_TOKENS for ids in full)
            enc = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                feats.append(_tensor(self.model.get_text_features(**enc)).float().cpu())
        return (torch.cat(feats) if feats else torch.zeros((0, self.projection_dim))), truncated


def _tensor(out):
    """transformers 5 returns a model output whose pooler_output is the projected embedding."""
    import torch

    return out if torch.is_tensor(out) else out.pooler_output


def _resolve_folder(scorer: str, model_id: str) -> Path:
    p = Path(model_id).expanduser()
    if p.is_dir():
        return p
    if p.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
        raise ScorerError(
            f"{scorer}: CLIP model {model_id!r} is not a folder; pass clip_model=/path/to/a/CLIP/folder or set {CLIP_ENV}"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, validation errors, offline mode
        raise ScorerError(
            f"{scorer}: CLIP model {model_id!r} is not a local folder and not in the Hugging Face cache (no downloads at run time); "
            f"pass clip_model=/path/to/folder or set {CLIP_ENV}"
        ) from None


def weights_sha256(scorer: str, folder: Path) -> str:
    """sha256 of the weights file a CLIPModel loads from ``folder`` (sharded: of the 'name sha' lines)."""
    from pipelines.scorers.nudenet_classifier import sha256_file

    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return sha256_file(folder / name)
    shards = sorted(folder.glob("model-*.safetensors")) or sorted(folder.glob("pytorch_model-*.bin"))
    if shards:
        lines = "".join(f"{s.name} {sha256_file(s)}\n" for s in shards)
        return hashlib.sha256(lines.encode()).hexdigest()
    raise ScorerError(f"{scorer}: no CLIP weights (model.safetensors / pytorch_model.bin) in {folder}")


def load_clip(
    scorer: str,
    clip_model: str | os.PathLike | None = None,
    need_tokenizer: bool = True,
    device: str | None = None,
) -> LoadedClip:
    model_id = str(clip_model or os.environ.get(CLIP_ENV) or DEFAULT_CLIP_MODEL)
    folder = _resolve_folder(scorer, model_id)
    if not (folder / "config.json").is_file():
        raise ScorerError(f"{scorer}: {folder} has no config.json; it is not a Hugging Face CLIP folder")
    if not (folder / "preprocessor_config.json").is_file():
        raise ScorerError(
            f"{scorer}: {folder} has no preprocessor_config.json (the CLIP image processor config); add it"
        )
    sha = weights_sha256(scorer, folder)

    import torch
    import transformers
    from transformers import CLIPModel

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor  # transformers 5, no torchvision
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval().to(device)
        processor = ImageProcessor.from_pretrained(str(folder), local_files_only=True)
        tokenizer, tok_source = None, None
        if need_tokenizer:
            if any((folder / f).is_file() for f in ("tokenizer.json", "vocab.json")):
                from transformers import CLIPTokenizer

                tokenizer = CLIPTokenizer.from_pretrained(str(folder), model_max_length=MAX_TOKENS)
                tok_source = "folder"
            else:
                from models.components import load_clip_tokenizer

                tokenizer, tok_source = load_clip_tokenizer(), "builtin"
    except ScorerError:
        raise
    except Exception as exc:
        raise ScorerError(
            f"{scorer}: could not load CLIP from {folder}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        transformers.logging.set_verbosity(previous)
    return LoadedClip(model, processor, tokenizer, model_id, folder, sha, tok_source, device)


class ClipScoreScorer(Scorer):
    name: ClassVar[str] = "clip_score"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "alignment"
    higher_is_better: ClassVar[bool] = True
    default_threshold: ClassVar[float | None] = None
    needs: ClassVar[frozenset[str]] = frozenset({"image", "prompt"})
    metrics: ClassVar[tuple[str, ...]] = ("clip_score",)
    metric_ranges: ClassVar[dict[str, tuple[float, float]]] = {"clip_score": (0, 100)}
    weights: ClassVar[Weights] = "user"  # the CLIP weights given: recorded, not pinned

    def __init__(
        self, clip_model: str | os.PathLike | None = None, batch_size: int = 16, device: str | None = None
    ):
        self.clip = load_clip(self.name, clip_model, need_tokenizer=True, device=device)
        self.model_sha256 = self.clip.weights_sha256
        self.batch_size = max(1, int(batch_size))

    def score(self, items: list[ScoreInput]) -> list[ScoreRow]:
        if not items:
            return []
        img = self.clip.image_features([it.image for it in items], self.batch_size)
        txt, truncated = self.clip.text_features([it.prompt or "" for it in items], self.batch_size)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        cos = (img * txt).sum(dim=-1).tolist()
        return [
            self.row(
                it.generation_id,
                "clip_score",
                100.0 * max(c, 0.0),
                {
                    "cos": c,
                    "clip_model": self.clip.model_id,
                    "truncated": t,
                    "tokenizer": self.clip.tokenizer_source,
                },
            )
            for it, c, t in zip(items, cos, truncated, strict=True)
        ]
