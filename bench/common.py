"""Shared timing helpers for the benchmarks: interleaved repeats, paired ratios, counting hooks, machine facts.

The machine these run on is shared and loaded (2 cores, several engineers), so no absolute time from one run
means much. Every benchmark therefore times its variants *side by side*: one round calls every variant once,
in an order that rotates from round to round (no variant is always first or always after the same one), and
a ratio is the median over rounds of the per-round ratio (a paired comparison: both sides of a ratio ran
seconds apart, under the same background load). Medians, not means or minima, so one unlucky round moves
nothing and one lucky round proves nothing.

Each call records two clocks: wall time and the process's CPU time (all its threads). With torch on one
intra-op thread, CPU time is the work a call did, whatever share of a core the scheduler gave it, so ratios
on the CPU clock stay steady when the machine's load swings; on a GPU only the (synchronised) wall clock
counts. Benchmarks say which clock each number uses.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # so `python bench/x.py` imports the project without installing it
    sys.path.insert(0, str(REPO))


# -- timing -------------------------------------------------------------------------------------------------
@dataclass
class Timings:
    """Seconds per round for each variant (``rounds[name][r]`` is round r), from :func:`interleaved`."""

    rounds: dict[str, list[float]] = field(default_factory=dict)  # wall seconds
    results: dict[str, list[Any]] = field(default_factory=dict)  # what each timed call returned, per round
    cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds of this process (all threads)

    def median(self, name: str, clock: str = "wall") -> float:
        return statistics.median(self.clock(clock)[name])

    def clock(self, clock: str) -> dict[str, list[float]]:
        return {"wall": self.rounds, "cpu": self.cpu}[clock]

    def of(self, clock: str) -> Callable[[str, int], float]:
        """Per-round accessor for :meth:`ratio`'s ``of`` on the given clock."""
        series = self.clock(clock)
        return lambda name, r: series[name][r]

    def ratio(self, num: str, den: str, of: Callable[[str, int], float] | None = None) -> float:
        """Median over rounds of time(num) / time(den), each round's pair measured in the same round.

        ``of(name, round)`` replaces the wall time by another per-round quantity (e.g. the loop time)."""
        return statistics.median(self.per_round(num, den, of))

    def ratio_range(
        self, num: str, den: str, of: Callable[[str, int], float] | None = None
    ) -> tuple[float, float]:
        """Smallest and largest per-round ratio: how much the load moved the pair around."""
        rs = self.per_round(num, den, of)
        return min(rs), max(rs)

    def per_round(self, num: str, den: str, of: Callable[[str, int], float] | None = None) -> list[float]:
        of = of or (lambda name, r: self.rounds[name][r])
        return [of(num, r) / of(den, r) for r in range(len(self.rounds[num]))]


def interleaved(
    variants: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    before: Callable[[str], Any] | None = None,
) -> Timings:
    """Time each variant ``repeats`` times, round-robin with a rotating start, after ``warmup`` untimed rounds.

    ``sync`` runs before reading the clock (``torch.cuda.synchronize`` on a GPU); ``before(name)`` runs untimed
    before each timed call (e.g. a fresh output folder for an end-to-end run)."""
    names = list(variants)
    sync = sync or (lambda: None)
    out = Timings({n: [] for n in names}, {n: [] for n in names}, {n: [] for n in names})
    for _ in range(warmup):
        for n in names:
            if before is not None:
                before(n)
            variants[n]()
    sync()
    for r in range(repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            if before is not None:
                before(n)
            sync()
            c0, t0 = time.process_time(), time.perf_counter()
            result = variants[n]()
            sync()
            out.rounds[n].append(time.perf_counter() - t0)
            out.cpu[n].append(time.process_time() - c0)
            out.results[n].append(result)
    return out


def median(xs) -> float:
    return statistics.median(list(xs))


def finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# -- counting / timing hooks on model parts -------------------------------------------------------------------
@dataclass
class Meter:
    """Calls, batch rows and seconds spent in one wrapped method (e.g. ``unet.forward``)."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0


@contextlib.contextmanager
def metered(
    targets: dict[str, tuple[Any, str]],
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[dict[str, Meter]]:
    """Wrap ``obj.<method>`` for each ``name: (obj, method)`` so that every call counts its rows (the first
    argument's batch dimension) and time; every wrapper is removed again on exit, error or not.

    The wrapper is an instance attribute shadowing the class's method, so ``module(...)`` (which calls
    ``self.forward``) and direct calls such as ``vae.decode(...)`` both go through it. ``clock`` is
    ``time.perf_counter`` (wall) or ``time.process_time`` (CPU)."""
    sync = sync or (lambda: None)
    meters = {name: Meter() for name in targets}
    installed: list[tuple[Any, str, bool, Any]] = []
    try:
        for name, (obj, attr) in targets.items():
            had_own = attr in vars(obj)
            original = getattr(obj, attr)
            meter = meters[name]

            def wrapper(*args, _original=original, _meter=meter, **kwargs):
                first = args[0] if args else next(iter(kwargs.values()), None)
                _meter.calls += 1
                _meter.rows += int(first.shape[0]) if hasattr(first, "shape") else 1
                sync()
                t0 = clock()
                try:
                    return _original(*args, **kwargs)
                finally:
                    sync()
                    _meter.seconds += clock() - t0

            installed.append((obj, attr, had_own, vars(obj).get(attr)))
            setattr(obj, attr, wrapper)
        yield meters
    finally:
        for obj, attr, had_own, own in reversed(installed):
            if had_own:
                setattr(obj, attr, own)
            else:
                delattr(obj, attr)


def profile_top(fn: Callable[[], Any], n: int = 15, sort: str = "tottime") -> list[dict[str, Any]]:
    """cProfile one call of ``fn``; the ``n`` functions with the most own time (or ``sort``)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share": tottime / total,
            }
        )
    key = "tottime_s" if sort == "tottime" else "cumtime_s"
    return sorted(rows, key=lambda r: r[key], reverse=True)[:n]


# -- machine facts --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where and when a benchmark ran: CPU model, cores, load averages at the time, versions, date."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    torch = sys.modules.get("torch")  # only when the benchmark uses it (importing it costs seconds)
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info.update(extra or {})
    return info


def set_threads(n: int) -> None:
    """Intra-op threads for torch (and BLAS via OMP for any child process)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


def quiet_libraries() -> None:
    """No progress bars or deprecation chatter in benchmark output."""
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")


# -- output ---------------------------------------------------------------------------------------------------
def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str | Path | None, obj: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(obj, indent=1, default=str) + "\n")
