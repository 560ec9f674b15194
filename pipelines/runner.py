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

from pipelines.contract import read_batch
from pipelines.generate import SampledBatch, sample_batch, write_batch
from pipelines.load import load_run
from pipelines.plan import plan_run
from pipelines.runspec import RunSpec, load_spec
from pipelines.score import cached_scorer, score_batch
from pipelines.storage import ImageMemo, Store

# In the helper process: the images it wrote, for its scorers (and as baselines of later batches).
_MEMO = ImageMemo()
_HELPER: list[ProcessPoolExecutor] = []  # this process's helper, once started


def preflight(spec: RunSpec) -> None:
    """Fail before anything is written when the model or concept pack cannot be found."""
    from models.components import resolve_model
    from models.concepts import load_pack

    for model in spec.all_models:
        resolve_model(model.id)
    load_pack(spec.concept)


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


def _helper_start(parent: int, threads: int) -> None:
    """In the helper: its crash (fault injection) is the run's crash; its onnxruntime scorers use the
    cores the sampler leaves and do not busy-wait on them."""
    from pipelines import generate
    from pipelines.scorers import nudenet_classifier

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
        init = (os.getpid(), threads)
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
    preflight(spec)
    plan = plan_run(spec)
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
                raise RuntimeError(f"run {run_id}: the finishing process died; re-run to resume") from None
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
