"""What a batch cost to sample: UNet rows per denoising step, peak device memory, sampling seconds.

``measure(components)`` wraps one ``models.sampler.sample`` call. It counts the rows of every UNet forward
(a forward pre-hook on the UNet module, removed on exit, so extra UNet calls a method makes — SLD's third
row, a Safe-Denoiser reference pass — count too) and, on CUDA, reads ``torch.cuda.max_memory_allocated``
after resetting the device's peak counter. On CPU there is no device memory to read: the peak is recorded
as NULL. (The process's resident-set high-water mark from ``resource.getrusage`` only ever grows over a
process's life and includes the model, the scorers and Python itself, so it says nothing about one batch.)

``BatchCost`` sums the measurements of a batch's micro-batches and becomes the manifest's ``efficiency``
dict, which the loader writes to the ``batches`` table (sql/schema/005_efficiency.sql).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from models.components import Components


@dataclass
class BatchCost:
    """A batch's sampling cost, summed over its micro-batches (each a ``sample`` call of ``steps`` steps)."""

    unet_rows: int = 0  # rows through the UNet, summed over every call of every step of every call
    unet_calls: int = 0
    chunks: int = 0  # sample() calls
    steps: int = 0  # denoising steps per sample() call (the run's sampler setting)
    images: int = 0
    sample_s: float = 0.0
    peak_mem_bytes: int | None = None  # max over micro-batches; None on CPU
    peak_mem_device: str | None = None  # e.g. "cuda:0"; None on CPU

    def add(self, m: Measurement, steps: int, images: int, seconds: float) -> None:
        self.unet_rows += m.rows
        self.unet_calls += m.calls
        self.chunks += 1
        self.steps = steps
        self.images += images
        self.sample_s += seconds
        if m.peak_mem_bytes is not None:
            self.peak_mem_bytes = max(self.peak_mem_bytes or 0, m.peak_mem_bytes)
            self.peak_mem_device = m.device

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``efficiency`` entry: the sums plus the two per-step figures the marts read."""
        out = asdict(self)
        # per image and step: what one image costs in UNet rows (CFG baseline: 2, SLD: 3)
        out["unet_rows_per_step"] = (
            self.unet_rows / (self.steps * self.images) if self.steps and self.images else None
        )
        # per sample() call and step: how many UNet forwards one step makes (batched CFG: 1)
        out["unet_calls_per_step"] = (
            self.unet_calls / (self.steps * self.chunks) if self.steps and self.chunks else None
        )
        out["sample_s"] = round(self.sample_s, 4)
        return out


@dataclass
class Measurement:
    rows: int = 0
    calls: int = 0
    peak_mem_bytes: int | None = None
    device: str | None = None


@contextlib.contextmanager
def measure(components: Components) -> Iterator[Measurement]:
    """Count UNet rows and calls inside the block; on CUDA also the peak memory the block allocated."""
    import torch

    unet = components.unet
    m = Measurement()

    def count(_module: object, args: tuple, kwargs: dict[str, Any]) -> None:
        x = args[0] if args else kwargs.get("sample")
        m.calls += 1
        m.rows += int(x.shape[0]) if x is not None else 0

    device = next(unet.parameters()).device
    cuda = device.type == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    handle = unet.register_forward_pre_hook(count, with_kwargs=True)
    try:
        yield m
    finally:
        handle.remove()
        if cuda:
            torch.cuda.synchronize(device)
            m.peak_mem_bytes = int(torch.cuda.max_memory_allocated(device))
            m.device = str(device)
