"""Run a whole audit in one process: plan → generate → score → load (the embedded, non-Airflow path).

The Airflow DAG calls the same steps as separate tasks; this is their composition, with progress bars.
Re-running is safe at every point: finished batches are skipped, partial ones redone.

While this process samples batch k + 1, a helper process *finishes* batch k: PNGs, thumbnails,
``generations.parquet``, the manifest (last), then its scores. On a GPU the CPU is otherwise idle while
the model samples; on a CPU the two get a core each when there are two. A process, not a thread: the
sampler's Python loop takes the GIL back after every tensor operation, and a thread scoring beside it
slowed it several-fold (GIL convoy; measured in bench/RESULTS.md, part 4). The helper starts once per
process, as ``cached_components`` loads once, and keeps its scorers loaded between runs.

At most one batch is being finished while the next is sampled (two batches' images in memory). The helper
scores the arrays it was handed instead of decoding the PNGs it just wrote (:class:`ImageMemo`; same
values). A failure there stops the run with that error once the batch being sampled is done; batches
finished before it keep their manifests, so a re-run resumes. A crash of the helper is a crash of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipelines.contract import Plan, read_batch
from pipelines.errors import HelperDiedError
from pipelines.generate import SampledBatch, sample_batch, write_batch
from pipelines.load import load_run
from pipelines.plan import plan_run
from pipelines.runlock import run_lock
from pipelines.runspec import RunSpec, load_spec
from pipelines.score import cached_scorer, score_batch
from pipelines.storage import ImageMemo, Store

# In the helper process: the images it wrote, for its scorers (and as baselines of later batches).
_MEMO = ImageMemo()
_HELPER: list[ProcessPoolExecutor] = []  # this process's helper, once started


MAX_PLANNED_ITEMS = 2_000_000  # images one plan may hold; SAFEAUDIT_MAX_ITEMS raises it


def preflight(spec: RunSpec) -> None:
    """Fail before anything is written when the model or concept pack cannot be found, a prompt set is
    empty or holds a seed out of range, or the plan would expand past the item cap."""
    from models.components import resolve_model
    from models.concepts import load_pack

    for model in spec.all_models:
        resolve_model(model.id)
    pack = load_pack(spec.concept)
    check_data(spec, pack.name)


def check_data(spec: RunSpec, concept_name: str) -> int:
    """Every prompt set yields prompts with storable seeds; returns the plan's item count (an upper bound)."""
    from pipelines.plan import method_points
    from pipelines.prompts import PromptFileError, load_prompt_set
    from pipelines.runspec import MAX_SEED, RunSpecError

    n_prompts = 0
    for i, ps in enumerate(spec.prompt_sets):
        prompts = load_prompt_set(ps, default_concept=concept_name)
        if not prompts:
            where = ps.file or f"built-in {ps.builtin!r}"
            raise RunSpecError(f"prompt_sets[{i}] {ps.name!r}: no prompts ({where} holds none that match)")
        for p in prompts:
            if p.seed is not None and not 0 <= p.seed + spec.images_per_prompt - 1 < MAX_SEED:
                raise PromptFileError(
                    f"{p.source_file or ps.name}:{p.line}: seed {p.seed} out of range [0, 2^63)"
                )
        n_prompts += len(prompts)
    n_seeds = len(spec.seeds) if spec.seeds is not None else spec.images_per_prompt
    n_points = len(method_points(spec)) * len(spec.all_models)
    n_items = n_prompts * n_seeds * n_points
    cap = int(os.environ.get("SAFEAUDIT_MAX_ITEMS", MAX_PLANNED_ITEMS))
    if n_items > cap:
        raise RunSpecError(
            f"spec expands to {n_items} images ({n_prompts} prompts x {n_seeds} seeds x "
            f"{n_points} model x method points), over the cap of {cap} (SAFEAUDIT_MAX_ITEMS)"
        )
    return n_items


def check_device(device: str) -> None:
    """The spec's device exists on this machine (checked before the plan is written)."""
    from pipelines.errors import DeviceError

    if device == "cpu":
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"model.device: {device!r} requested but CUDA is not available on this machine")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"model.device: {device!r} requested but this machine has {torch.cuda.device_count()} GPU(s)"
            )
    elif device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("model.device: 'mps' requested but MPS is not available on this machine")


def generation_order(artifacts: str, run_id: str, batch_ids: list[str]) -> list[str]:
    """The plan's batches model by model (one set of components in memory at a time), and within a model
    those that hold baseline images first (otherwise in plan order).

    A batch is scored as soon as it is written, and a fidelity scorer compares each image with the
    same-seed baseline image of its model: that image must already be on disk (or in the memo) by then.
    """
    store = Store(artifacts)
    batches = {b: read_batch(store, run_id, b) for b in batch_ids}
    models = list(dict.fromkeys(b.model.key for b in batches.values()))  # in plan order
    return sorted(  # stable: plan order within each group
        batch_ids, key=lambda b: (models.index(batches[b].model.key), not batches[b].holds_baselines)
    )


def finish_batch(
    artifacts: str, sampled: SampledBatch | dict[str, Any], warehouse: str, memo: ImageMemo | None
) -> dict[str, Any]:
    """Write a sampled batch (manifest last), then score it; a batch done earlier is only scored."""
    manifest = sampled if isinstance(sampled, dict) else write_batch(sampled, memo=memo)
    score_batch(artifacts, manifest["run_id"], manifest["batch_id"], warehouse=warehouse, memo=memo)
    return manifest


def _helper_finish(
    artifacts: str, sampled: SampledBatch | dict[str, Any], warehouse: str, handoff: bool
) -> dict[str, Any]:
    return finish_batch(artifacts, sampled, warehouse, _MEMO if handoff else None)


def _die_with_parent(parent: int, pdeathsig: bool, poll_s: float = 0.5) -> None:
    """In the helper: exit when the parent dies, however it dies (SIGKILL included: no cleanup runs there).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill us when the parent's spawning thread
    ends, so it is set only when that thread is the parent's main thread. Everywhere: a daemon thread polls
    the parent pid and exits when we were re-parented (covers the rest, and a parent that died before
    prctl took effect)."""
    import threading
    import time

    if pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no libc prctl: the watchdog below still works
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)  # EX_SOFTWARE: our parent is gone, nobody will read our results
            time.sleep(poll_s)

    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watch, name="safeaudit-parent-watchdog", daemon=True).start()


def _helper_start(parent: int, threads: int, pdeathsig: bool = False) -> None:
    """In the helper: it dies with its parent; its crash (fault injection) is the run's crash; its
    onnxruntime scorers use the cores the sampler leaves and do not busy-wait on them."""
    from pipelines import generate
    from pipelines.scorers import nudenet_classifier

    _die_with_parent(parent, pdeathsig)

    generate.FAULT_ALSO_KILLS[:] = [parent]
    nudenet_classifier.SESSION_DEFAULTS.update(threads=threads, allow_spinning=False)


def helper_threads(device: str) -> int:
    """CPU threads for the helper: the cores the sampler does not use (on a GPU it keeps one busy)."""
    import torch

    busy = torch.get_num_threads() if device == "cpu" else 1
    return max(1, (os.cpu_count() or 1) - busy)


def _helper_load(scorers: list[str]) -> None:
    """Load the scorers in the helper while this process samples its first batch."""
    for name in scorers:
        cached_scorer(name)


def helper(threads: int) -> ProcessPoolExecutor:
    """This process's finishing helper, started on first use with ``threads`` for its onnxruntime
    scorers, then kept (spawned, so it inherits no forked torch state)."""
    if not _HELPER:
        ctx = multiprocessing.get_context("spawn")
        # the executor spawns its worker from the thread that submits first: this one
        on_main = threading.current_thread() is threading.main_thread()
        init = (os.getpid(), threads, on_main)
        _HELPER.append(ProcessPoolExecutor(1, mp_context=ctx, initializer=_helper_start, initargs=init))
    return _HELPER[0]


def run_audit(
    spec_or_path: RunSpec | str | Path,
    quiet: bool = False,
    overrides: dict | None = None,
    overlap: bool = True,
    handoff: bool = True,
) -> dict[str, Any]:
    """Plan, generate, score and load one audit; return the load summary plus run counts.

    ``overlap=False`` finishes each batch in this process before sampling the next; ``handoff=False``
    makes the scorers decode every PNG. Both exist for tests and benchmarks: the results are the same.
    The helper is a spawned process: from a script, call this under ``if __name__ == "__main__":``
    (``spawn`` re-imports the main module in the helper, as for any multiprocessing code).
    """
    spec = spec_or_path if isinstance(spec_or_path, RunSpec) else load_spec(spec_or_path, overrides)
    for model in spec.all_models:  # here, not in preflight: a cluster plans on a CPU worker
        check_device(model.device)
    preflight(spec)
    plan = plan_run(spec)
    with run_lock(spec.output.artifacts, plan.run_id):  # a second run of this spec stops here
        return _run_planned(spec, plan, quiet, overlap, handoff)


def _run_planned(spec: RunSpec, plan: Plan, quiet: bool, overlap: bool, handoff: bool) -> dict[str, Any]:
    """Generate, score and load a planned run (under its run lock)."""
    run_id, artifacts, warehouse = plan.run_id, spec.output.artifacts, spec.output.warehouse
    n_new = plan.n_expected - plan.n_reused
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
    ) as bar:
        gen = bar.add_task(f"generate {run_id}", total=plan.n_expected)
        sc = bar.add_task("score", total=len(plan.batch_ids))

        def finished(manifest: dict[str, Any]) -> None:
            bar.advance(gen, manifest["n_items"] if manifest.get("skipped") else manifest["n_reused"])
            bar.advance(sc)

        def sample(batch_id: str) -> SampledBatch | dict[str, Any]:
            return sample_batch(artifacts, run_id, batch_id, progress=lambda n: bar.advance(gen, n))

        order = generation_order(artifacts, run_id, list(plan.batch_ids))
        if overlap:
            pool = helper(helper_threads(spec.all_models[0].device))
            try:
                manifests = _overlapped(
                    order,
                    sample,
                    pool.submit(_helper_load, list(spec.scorers)),
                    lambda s: pool.submit(_helper_finish, artifacts, s, warehouse, handoff),
                    finished,
                )
            except BrokenProcessPool:
                _HELPER.clear()
                raise HelperDiedError(f"run {run_id}: the finishing process died; re-run to resume") from None
        else:
            memo = ImageMemo() if handoff else None
            manifests = []
            for batch_id in order:
                manifests.append(finish_batch(artifacts, sample(batch_id), warehouse, memo))
                finished(manifests[-1])
        summary = load_run(artifacts, run_id, warehouse)
    summary["generated_now"] = sum(m["n_generated"] for m in manifests if not m.get("skipped"))
    summary["planned_new"] = n_new
    summary["spec"] = spec.name
    return summary


def _overlapped(
    batch_ids: list[str],
    sample: Callable[[str], Any],
    warm_up: Future,
    submit: Callable[[Any], Future],
    finished: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Sample each batch here while the previous one is finished elsewhere (one batch in flight)."""
    manifests: list[dict[str, Any]] = []
    pending = warm_up
    for batch_id in batch_ids:
        sampled = sample(batch_id)
        done = pending.result()  # an error in the helper is raised here: the run stops
        if done is not None:
            manifests.append(done)
            finished(done)
        pending = submit(sampled)
    done = pending.result()
    if done is not None:
        manifests.append(done)
        finished(done)
    return manifests
