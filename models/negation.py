"""Negation sets for the Safe Denoiser: unsafe images as VAE latents of the model they serve.

Two forms, one reader:

- **an artifact** (what ``safeaudit negation-set build|import`` writes, ``pipelines/negation_sets.py``): a folder
  ``<name>-<hash>/`` holding ``manifest.json`` (name, content hash, model, VAE fingerprint, size, encoding,
  members with prompts, seeds, rule and scores), ``images/`` and ``latents.safetensors`` (N×C×h×w float32).
  Latents depend on the VAE and the resolution, so an artifact serves one model at one size; using it with
  another VAE or size is an error, never a silent re-encode. Referred to by name (the newest artifact of
  that name for the model and size), by ``name@hash`` or ``hash`` (exactly that one), or by its folder.
- **a plain folder of images** (the release's setting, kept for the method-level API and tests): encoded at
  run time with the serving VAE and cached by (image bytes, VAE weights, size, sampling); its hash is the
  images' content hash. Run specs do not take this form: import the folder first (it becomes an artifact).

Artifacts are searched in ``$SAFEAUDIT_NEGATION_SETS`` (``os.pathsep``-separated folders), ``negation_sets/``
and ``models/toy/negation/`` under the project root.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from models.components import Components

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ENCODING_VERSION = "1"  # bump when the way images become latents changes (invalidates the disk cache)
ENCODE_BATCH = 8
MEMORY_CACHE_SIZE = 8
MANIFEST = "manifest.json"
LATENTS = "latents.safetensors"
FORMAT_VERSION = 1  # of the artifact layout; part of every set hash


class NegationSetError(ValueError):
    """A negation set cannot be found or does not fit the model; the message is one actionable line."""


# ---------------------------------------------------------------------------------------------------------
# Encoding images with a VAE
# ---------------------------------------------------------------------------------------------------------
_VAE_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """Hash of the VAE's weights, so a retrained model never reads a stale set (memoised per object)."""
    if vae not in _VAE_MEMO:
        digest = hashlib.sha256()
        for name, tensor in sorted(vae.state_dict().items()):
            digest.update(f"{name}\0{tuple(tensor.shape)}\0{tensor.dtype}\0".encode())
            digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
        _VAE_MEMO[vae] = digest.hexdigest()[:16]
    return _VAE_MEMO[vae]


def image_tensor(image: str | os.PathLike | np.ndarray, height: int, width: int) -> torch.Tensor:
    """A path or uint8 H×W×3 array → 3×h×w float in [−1, 1] at the run's size (bicubic), as the VAE was trained."""
    from PIL import Image

    img = Image.fromarray(image) if isinstance(image, np.ndarray) else Image.open(image)
    with img:
        img = img.convert("RGB")
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)


@torch.no_grad()
def encode_images(
    components: Components, images: list, height: int, width: int, latent: str, seed: int
) -> torch.Tensor:
    """VAE latents (N, C, h, w), float32 on CPU, scaled like the UNet's latents. ``latent="sample"`` takes one
    posterior draw per image from a fixed CPU stream (the release's stochastic encoding); "mean" the mean."""
    vae = components.vae
    generator = torch.Generator("cpu").manual_seed(int(seed))
    out = []
    for start in range(0, len(images), ENCODE_BATCH):
        pixels = torch.stack([image_tensor(x, height, width) for x in images[start : start + ENCODE_BATCH]])
        dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
        z = dist.mean
        if latent == "sample":
            z = z + dist.std * torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
        out.append((z * components.scaling_factor).float().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------
# A plain image folder, encoded at run time (cached by content)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NegationSet:
    latents: torch.Tensor  # (N, C, h, w) float32 on CPU, scaled like the UNet's latents
    names: tuple[str, ...]
    content_hash: str  # artifact: its set hash; folder: the image files' hash (names and bytes)
    key: str  # cache key (folder) or the artifact's path
    source: str  # "encoded" | "memory" | "disk" | "artifact": where this call got the latents


_MEMORY: dict[str, torch.Tensor] = {}
_CONTENT_MEMO: dict[tuple, str] = {}


def cache_dir() -> Path:
    from models.components import REPO_ROOT

    return Path(os.environ.get("SAFEAUDIT_CACHE", REPO_ROOT / ".cache")) / "negation"


def clear_memory_cache() -> None:
    _MEMORY.clear()


def image_files(folder: str | os.PathLike) -> list[Path]:
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"negation set folder {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"negation set folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def negation_content_hash(folder: str | os.PathLike) -> str:
    """SHA-256 over the image files' names and bytes (memoised on their stat signatures)."""
    files = image_files(folder)
    signature = tuple((f.name, s.st_size, s.st_mtime_ns, s.st_ino) for f in files for s in [f.stat()])
    memo_key = (str(Path(folder).resolve()), signature)
    if memo_key not in _CONTENT_MEMO:
        digest = hashlib.sha256()
        for f in files:
            data = f.read_bytes()
            digest.update(f"{f.name}\0{len(data)}\0".encode())
            digest.update(data)
        _CONTENT_MEMO[memo_key] = digest.hexdigest()[:16]
    return _CONTENT_MEMO[memo_key]


def load_negation_set(
    components: Components,
    folder: str | os.PathLike,
    height: int,
    width: int,
    latent: str = "mean",
    seed: int = 0,
) -> NegationSet:
    """VAE latents of every image in ``folder``, encoded once: memory cache, then disk cache, then the VAE."""
    files = image_files(folder)
    content = negation_content_hash(folder)
    fields = [ENCODING_VERSION, content, vae_fingerprint(components.vae), f"{height}x{width}", latent]
    fields += [str(seed) if latent == "sample" else "", repr(components.scaling_factor)]
    key = hashlib.sha256("|".join(fields).encode()).hexdigest()[:24]
    names = tuple(f.name for f in files)

    if key in _MEMORY:
        return NegationSet(_MEMORY[key], names, content, key, "memory")
    path = cache_dir() / f"{key}.pt"
    source = "disk"
    try:
        latents = torch.load(path, weights_only=True)["latents"]
    except Exception:
        latents, source = encode_images(components, files, height, width, latent, seed), "encoded"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        torch.save({"latents": latents, "names": list(names), "content_hash": content}, tmp)
        os.replace(tmp, path)  # atomic: concurrent workers never read a half-written file
    while len(_MEMORY) >= MEMORY_CACHE_SIZE:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = latents
    return NegationSet(latents, names, content, key, source)


# ---------------------------------------------------------------------------------------------------------
# Artifacts: find, check, read
# ---------------------------------------------------------------------------------------------------------
def set_dirs() -> list[Path]:
    """Where artifacts are searched, in order."""
    from models.components import REPO_ROOT

    extra = [Path(p) for p in os.environ.get("SAFEAUDIT_NEGATION_SETS", "").split(os.pathsep) if p]
    return [*extra, REPO_ROOT / "negation_sets", REPO_ROOT / "models" / "toy" / "negation"]


def set_hash(identity: dict[str, Any]) -> str:
    """The content hash of a set: sha256 of its identity (canonical JSON), 16 hex."""
    blob = json.dumps({"format": FORMAT_VERSION, **identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_artifact(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    manifest = json.loads((Path(path) / MANIFEST).read_text())
    return {**manifest, "path": str(Path(path).resolve())}


def parse_ref(ref: str) -> tuple[str | None, str | None]:
    """``name`` → (name, None); ``name@hash`` → (name, hash); a bare 16-hex string → (None, hash)."""
    name, _, digest = ref.partition("@")
    if not digest and len(name) == 16 and all(c in "0123456789abcdef" for c in name):
        return None, name
    return name, digest or None


def model_key(model_id: str) -> str:
    """How a set names its model: built-in and hub ids as given, local folders as their resolved path; the
    folder a built-in is materialised in (the toy's weights, a tiny model's cache) is that built-in."""
    path = Path(model_id).expanduser()
    if model_id.startswith("builtin:") or not path.exists():
        return model_id
    return _builtin_of(path.resolve()) or str(path.resolve())


def _builtin_of(path: Path) -> str | None:
    from models.components import TINY_BUILTINS, TINY_SEED, TOY_MODEL_DIR

    if path == TOY_MODEL_DIR.resolve():
        return "builtin:toy"
    try:
        meta = json.loads((path / "safeaudit.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("kind") != "tiny-random" or meta.get("seed") != TINY_SEED:
        return None
    return next((name for name, fam in TINY_BUILTINS.items() if fam == meta.get("family", "sd")), None)


def list_artifacts() -> list[dict[str, Any]]:
    """Every artifact in the search folders (manifests), newest first."""
    out, seen = [], set()
    for root in set_dirs():
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and is_artifact(child):
                m = read_manifest(child)
                if m["set_hash"] not in seen:
                    seen.add(m["set_hash"])
                    out.append(m)
    return sorted(out, key=lambda m: m.get("created_at", ""), reverse=True)


def fits(manifest: dict[str, Any], model: str | None, height: int | None, width: int | None) -> bool:
    return (model is None or manifest["model_key"] == model_key(model)) and (
        height is None or (manifest["height"], manifest["width"]) == (height, width)
    )


def describe_target(model: str | None, height: int | None, width: int | None) -> str:
    size = f" at {height}x{width}" if height is not None else ""
    return f"model {model}{size}" if model is not None else f"any model{size}"


def resolve(ref: str, model: str | None = None, height: int | None = None, width: int | None = None) -> dict:
    """The manifest of the artifact ``ref`` names (a folder, ``name``, ``name@hash`` or ``hash``) that fits
    the model and size (None: any). By name: the newest such artifact. Raises NegationSetError."""
    path = Path(ref).expanduser()
    if path.is_dir() and is_artifact(path):
        candidates = [read_manifest(path)]
    else:
        name, digest = parse_ref(ref)
        candidates = [
            m
            for m in list_artifacts()
            if (name is None or m["name"] == name) and (digest is None or m["set_hash"] == digest)
        ]
        if not candidates:
            where = ", ".join(str(d) for d in set_dirs())
            raise NegationSetError(f"negation set {ref!r} not found (searched {where})")
    fitting = [m for m in candidates if fits(m, model, height, width)]
    if not fitting:
        have = "; ".join(
            f"{m['name']}@{m['set_hash']}: {m['model_key']} at {m['height']}x{m['width']}" for m in candidates
        )
        raise NegationSetError(
            f"negation set {ref!r} has no version for {describe_target(model, height, width)} "
            f"(has: {have}); build one for it with `safeaudit negation-set build`"
        )
    return fitting[0]


def pinned(manifest: dict[str, Any]) -> str:
    return f"{manifest['name']}@{manifest['set_hash']}"


def load_artifact(components: Components, manifest: dict[str, Any], height: int, width: int) -> NegationSet:
    """The artifact's latents, after checking that they were encoded by this VAE at this size."""
    from safetensors.torch import load_file

    ref = pinned(manifest)
    if (manifest["height"], manifest["width"]) != (height, width):
        raise NegationSetError(
            f"negation set {ref} was encoded at {manifest['height']}x{manifest['width']}, this run samples "
            f"{height}x{width}; build a set for this size"
        )
    if manifest["vae_sha"] != vae_fingerprint(components.vae):
        raise NegationSetError(
            f"negation set {ref} was encoded by the VAE of {manifest['model_key']}, not this model's "
            f"({components.model_id}); build a set with this model"
        )
    key = f"artifact:{manifest['path']}:{manifest['set_hash']}"
    if key not in _MEMORY:
        latents = load_file(str(Path(manifest["path"]) / LATENTS))["latents"].float()
        while len(_MEMORY) >= MEMORY_CACHE_SIZE:
            _MEMORY.pop(next(iter(_MEMORY)))
        _MEMORY[key] = latents
    names = tuple(m["image_file"] for m in manifest["members"] if m["kept"])
    return NegationSet(_MEMORY[key], names, manifest["set_hash"], manifest["path"], "artifact")
