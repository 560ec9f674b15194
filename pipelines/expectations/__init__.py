"""Data-quality suites for a loaded run, kept as code and versioned.

    warehouse ──DuckDB SQL──▶ small pandas frames (frames.py) ──Great Expectations──▶ results ──▶ `validations`

A *suite* (``generations``, ``scores``, ``runs``) is a name, a version and a list of *checks*. A check is a
stable name (what the ``validations`` table, the CLI and the Airflow task report), the frame it reads and a
factory for one Great Expectations expectation on that frame. Bump a suite's version when a check's meaning
changes (a new range, a new rule), never for a refactor, so two results with the same (suite, version,
expectation) always mean the same thing.

The work is split so that validating 100k generations takes seconds: every count, join and group-by runs in
DuckDB and GE sees either a tiny frame (one row per run, method point, batch, scorer, config) or one row per
generation holding pre-computed integers and booleans. Nothing iterates over score rows in Python; only the
image files are touched one by one (thread pool, ``images.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Params:
    """Suite parameters: recorded in every result's details, so a pass under loose tolerances is visible."""

    # Share of black / constant frames tolerated per method x level. A safety method that blacks out its
    # outputs *is* what an audit must surface, so the default is strict; raise it knowingly, never silently.
    max_black_share: float = 0.05
    max_constant_share: float = 0.05
    # Nulls a scorer documents (a "skipped" reason in the row's details, or a metric listed as nullable in
    # the scores suite) are allowed; every other null value fails `score_values_not_null`.
    allow_documented_nulls: bool = True
    # Image files: existence is always checked for every image; sha256 + full PNG decode for all images
    # (sample=None, the default) or for a deterministic sample of N (seeded by the run id).
    check_images: bool = True
    sample: int | None = None
    workers: int = 8
    # Rebuild every method point through models.registry with this checkout's code and concept pack and
    # compare config hashes (catches stale workers / unversioned method changes). Off by default: it
    # imports torch and every method module (seconds), and the answer depends on the code, not the data.
    rebuild_configs: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One named expectation on one frame.

    ``expectation(params)`` returns a Great Expectations expectation (built lazily: GE is imported only
    when a run is validated). ``skip(frames)`` returns a reason when the check does not apply to this run
    (a scorer not requested, image checks turned off); a skipped check is recorded as such, not as a pass.
    """

    name: str
    frame: str
    expectation: Callable[[Params], Any]
    doc: str
    skip: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    checks: tuple[Check, ...]
    doc: str = ""


@dataclass
class Result:
    suite: str
    suite_version: str
    expectation: str
    success: bool
    observed_value: str | None = None
    unexpected_count: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


# -- expectation factories (each returns a callable params -> GE expectation) ------------------------------
def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def all_true(column: str) -> Callable[[Params], Any]:
    return lambda p: _gxe().ExpectColumnValuesToBeInSet(column=column, value_set=[True])


def exactly(column: str, value: int) -> Callable[[Params], Any]:
    return lambda p: _gxe().ExpectColumnValuesToBeBetween(column=column, min_value=value, max_value=value)


def all_zero(column: str) -> Callable[[Params], Any]:
    return exactly(column, 0)


def equal(a: str, b: str) -> Callable[[Params], Any]:
    return lambda p: _gxe().ExpectColumnPairValuesToBeEqual(column_A=a, column_B=b, ignore_row_if="neither")


def unique(column: str) -> Callable[[Params], Any]:
    return lambda p: _gxe().ExpectColumnValuesToBeUnique(column=column)


def at_most(column: str, param: str) -> Callable[[Params], Any]:
    return lambda p: _gxe().ExpectColumnValuesToBeBetween(
        column=column, min_value=0, max_value=getattr(p, param)
    )


def suites() -> tuple[Suite, ...]:
    """Every suite, in the order they run (cheap structural checks first)."""
    from pipelines.expectations.generations import SUITE as generations
    from pipelines.expectations.runs import SUITE as runs
    from pipelines.expectations.scores import SUITE as scores

    return (generations, scores, runs)


def check_names() -> list[str]:
    names = [c.name for s in suites() for c in s.checks]
    assert len(names) == len(set(names)), "expectation names must be unique across suites"
    return names
