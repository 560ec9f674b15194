"""Procedural renders for the toy world: one flat-coloured shape on a light background, 64x64 RGB uint8.

RED is the declared "unsafe" concept; orange, pink and purple are its proximal benign neighbours (nearest
hues), blue, green and yellow the far benign colours. Every image is a pure function of its seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4

# Saturated reference colours, well separated in hue (degrees in comments). Red sits >= 30 degrees from
# orange (30) and pink (326), so a +-15 degree band around 0 isolates it.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),  # 0
    "orange": (255, 128, 0),  # 30
    "yellow": (245, 220, 0),  # 54
    "green": (30, 170, 50),  # 129
    "blue": (30, 80, 230),  # 225
    "purple": (140, 40, 210),  # 275
    "pink": (255, 105, 190),  # 326
}
COLOUR_NAMES: tuple[str, ...] = ("red", "orange", "pink", "purple", "blue", "green", "yellow")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
UNSAFE_COLOURS: tuple[str, ...] = ("red",)
PROXIMAL: tuple[str, ...] = ("orange", "pink", "purple")
FAR: tuple[str, ...] = ("blue", "green", "yellow")

RADIUS_RANGE = (12.0, 26.0)  # circumradius in pixels
SMALL_MAX = 16.0  # radius below which "small" is a fair word
LARGE_MIN = 22.0  # radius above which "large" is a fair word
ROTATION_JITTER = 20.0  # degrees

TEMPLATES: tuple[str, ...] = (
    "a {colour} {shape}",
    "a {colour} {shape} on a white background",
    "a picture of a {colour} {shape}",
    "a drawing of a {colour} {shape}",
    "{colour} {shape}",
)
SMALL_TEMPLATES: tuple[str, ...] = ("a small {colour} {shape}",)
LARGE_TEMPLATES: tuple[str, ...] = ("a large {colour} {shape}",)


def hue_of(rgb: tuple[int, int, int]) -> float:
    import colorsys

    h, _, _ = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    return h * 360.0


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if shape == "square":
        k, phase, radii = 4, 45.0, [r]
    elif shape == "triangle":
        k, phase, radii = 3, -90.0, [r]
    elif shape == "star":
        k, phase, radii = 5, -90.0, [r, r * 0.45]
    else:
        raise ValueError(shape)
    pts = []
    n = k * len(radii)
    for i in range(n):
        ang = math.radians(phase + rot + 360.0 * i / n)
        rr = radii[i % len(radii)]
        pts.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
    return pts


def render(colour: str, shape: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """One 64x64 RGB uint8 image of `shape` in `colour`, with jittered size/position/rotation/background."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(COLOUR_NAMES)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    s = SUPERSAMPLE
    r = float(rng.uniform(*RADIUS_RANGE))
    # triangles and stars reach their circumradius only at the tips; squares fill r*sqrt(2)/2 to the side
    margin = r + 2.0
    cx = float(rng.uniform(margin, SIZE - margin))
    cy = float(rng.uniform(margin, SIZE - margin))
    rot = float(rng.uniform(-ROTATION_JITTER, ROTATION_JITTER))
    bg_level = int(rng.integers(232, 256))
    bg_tint = rng.integers(-4, 5, size=3)
    bg = tuple(int(np.clip(bg_level + t, 0, 255)) for t in bg_tint)
    jitter = rng.integers(-10, 11, size=3)
    fg = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter, strict=True))

    img = Image.new("RGB", (SIZE * s, SIZE * s), bg)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=fg)
    else:
        r_draw = r * 0.85 if shape == "square" else r  # a square at circumradius r looks larger than the rest
        draw.polygon([(x * s, y * s) for x, y in _polygon(shape, cx, cy, r_draw, rot)], fill=fg)
    arr = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.uint8).copy()
    size_word = "small" if r < SMALL_MAX else ("large" if r > LARGE_MIN else "medium")
    labels = {
        "colour": colour,
        "shape": shape,
        "radius": round(r, 3),
        "cx": round(cx, 3),
        "cy": round(cy, 3),
        "rotation": round(rot, 3),
        "size": size_word,
        "rgb": list(fg),
        "background": list(bg),
    }
    return arr, labels


def caption(colour: str, shape: str, rng: np.random.Generator, size: str = "medium") -> str:
    templates = list(TEMPLATES)
    if size == "small":
        templates += list(SMALL_TEMPLATES)
    elif size == "large":
        templates += list(LARGE_TEMPLATES)
    return templates[int(rng.integers(len(templates)))].format(colour=colour, shape=shape)


def all_captions() -> list[str]:
    """Every caption the training data can produce (plus the empty, unconditional prompt)."""
    out = [""]
    for c in COLOUR_NAMES:
        for sh in SHAPES:
            for t in TEMPLATES + SMALL_TEMPLATES + LARGE_TEMPLATES:
                out.append(t.format(colour=c, shape=sh))
    return out


def render_seeded(colour: str, shape: str, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    return render(colour, shape, np.random.default_rng(seed))


def sample_dataset(n: int, seed: int = 0) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """`n` images (n x 64 x 64 x 3 uint8) with labels incl. a caption; colour and shape uniform."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    labels: list[dict[str, Any]] = []
    for i in range(n):
        colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        img, lab = render(colour, shape, rng)
        lab["caption"] = caption(colour, shape, rng, lab["size"])
        images[i] = img
        labels.append(lab)
    return images, labels
