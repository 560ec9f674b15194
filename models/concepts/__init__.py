"""Concept packs: one named, versioned YAML file per target concept, holding what every method needs.

A pack is data, not code: SLD's safety-concept text, SAFREE's toxic keywords, the negative-prompt lists,
the Safe Denoiser's negation-set location and the dual-latent method's safe-embedding source. The pack's
content hash goes into every generation id, so changing a keyword re-generates exactly what it affects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACK_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACK_DIR.parent.parent


class ConceptPackError(ValueError):
    pass


@dataclass(frozen=True)
class ConceptPack:
    name: str
    version: int
    description: str = ""
    sld_concept: str = ""
    safree_keywords: tuple[str, ...] = ()
    negative_prompt_levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    negation_set: str | None = None  # folder of images (relative to the repo root or absolute)
    safe_embedding: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    source: str = ""  # the file it came from

    @property
    def content_hash(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "source"}
        blob = json.dumps(data, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def pack_id(self) -> str:
        return f"{self.name}@{self.version}"

    def negation_dir(self) -> Path | None:
        if not self.negation_set:
            return None
        path = Path(self.negation_set)
        return path if path.is_absolute() else REPO_ROOT / path


KNOWN_KEYS = {f for f in ConceptPack.__dataclass_fields__ if f != "source"}


def available() -> list[str]:
    return sorted(p.stem for p in PACK_DIR.glob("*.yaml"))


def load_pack(name_or_path: str) -> ConceptPack:
    """Load a pack by built-in name (``toy``, ``nudity``, ``i2p``) or from a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PACK_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConceptPackError(
            f"concept pack {name_or_path!r} not found (built-in packs: {', '.join(available())})"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConceptPackError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConceptPackError(f"{path}: a concept pack must be a mapping")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ConceptPackError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "version"):
        if key not in raw:
            raise ConceptPackError(f"{path}: missing key {key!r}")
    raw["safree_keywords"] = tuple(raw.get("safree_keywords") or ())
    raw["negative_prompt_levels"] = {
        k: tuple(v) for k, v in (raw.get("negative_prompt_levels") or {}).items()
    }
    return ConceptPack(**raw, source=str(path))
