"""The DuckDB side of validation: one query per frame, each returning a small pandas DataFrame.

Frames and their grain (``INDEX`` names the columns that identify a row in failure details):

- ``run``          one row: planned vs loaded totals;
- ``points``       one row per method point (method, label, level | knob value): planned vs generated counts,
                   black / constant frame shares;
- ``batches``      one row per batch id seen in ``batches`` or ``generations``: manifest items vs rows;
- ``configs``      one row per distinct (batch, stored method config): JSON parse, hash, method, batch agreement;
- ``scorers``      one row per scorer requested or seen: version / model sha256 pinned and consistent;
- ``rebuilt``      one row per planned method point: stored config hashes vs the registry's (opt-in);
- ``generations``  one row per generation row: key uniqueness, baseline links, score completeness / ranges /
                   detections (aggregated from score rows in SQL), image file checks.

Score rows that belong to a run: rows of the run's generations at the *current* version of a known scorer
(the version the code in this checkout would write; older versions of reused images are history). Version
and model pinning is checked on the rows the run's own batches computed.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.expectations import Params
from pipelines.queries import query
from pipelines.warehouse import WarehouseError

INDEX: dict[str, list[str]] = {
    "run": ["run_id", "n_expected", "n_generations", "n_batches", "n_batches_loaded"],
    "points": ["point", "expected", "n_generations"],
    "batches": ["batch_id"],
    "configs": ["batch_id", "method"],
    "scorers": ["scorer"],
    "generations": ["generation_id"],
    "rebuilt": ["point", "stored_hashes", "rebuilt_hash", "error"],
}

# What a scorer's rows must look like (metric ranges, optional and nullable metrics, pinned model files) is
# declared on its class in pipelines/scorers (``Scorer.metric_ranges``, ``weights``, ``pinned_model``, ...).


def config_hash(method_config: str) -> str:
    """``SafetyMethod.config_hash`` applied to the stored JSON of ``resolved_config()``."""
    blob = json.dumps(json.loads(method_config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _config_flags(
    method_config: str, stored_hash: str, method: str, batch_hash: str | None, batch_config: str | None
) -> tuple[bool, bool, bool, bool]:
    """(parses as a JSON object, hash reproduces, names its method, agrees with its batch)."""
    try:
        cfg = json.loads(method_config)
    except (TypeError, ValueError):
        return False, False, False, False
    if not isinstance(cfg, dict):
        return False, False, False, False
    try:
        same_as_batch = json.loads(batch_config) == cfg
    except (TypeError, ValueError):
        same_as_batch = False
    return (
        True,
        config_hash(method_config) == stored_hash,
        cfg.get("method") == method,
        (same_as_batch and batch_hash == stored_hash),
    )


class RunNotFound(WarehouseError):
    """The run id is not in the warehouse (a user error: the CLI prints one line)."""


class Frames:
    """Lazily computed, cached frames for one run, read over one DuckDB connection."""

    def __init__(self, con, run_id: str, params: Params | None = None, artifacts: str | None = None):
        self.con = con
        self.run_id = run_id
        self.params = params or Params()
        self.artifacts = artifacts
        row = con.execute(query("validation/run_spec"), [run_id]).fetchall()
        if not row:
            raise RunNotFound(f"run {run_id!r} is not in the warehouse")
        self.spec: dict[str, Any] = json.loads(row[0][0])
        self.image_stats: dict[str, Any] = {}
        self._cache: dict[str, pd.DataFrame] = {}
        self.timings: dict[str, float] = {}  # seconds per frame (image checks included in `generations`)

    def get(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            started = time.perf_counter()
            self._cache[name] = getattr(self, f"_frame_{name}")()
            self.timings[name] = round(time.perf_counter() - started, 3)
        return self._cache[name]

    def _df(self, name: str, params: list[Any] | None = None) -> pd.DataFrame:
        """The rows of the named query ``name`` (sql/queries/<name>.sql) with ``params`` bound."""
        return self.con.execute(query(name), params or []).df()

    # -- scorers ----------------------------------------------------------------------------------------
    @cached_property
    def requested_scorers(self) -> list[str]:
        return list(self.spec.get("scorers") or [])

    @cached_property
    def scorer_classes(self) -> dict[str, Any]:
        """Classes of every scorer requested or present in the run's scores (None: a name not registered)."""
        from pipelines.scorers import ScorerError, scorer_class

        seen = self.con.execute(query("validation/run_scorers"), [self.run_id]).fetchall()
        out: dict[str, Any] = {}
        for name in sorted({*self.requested_scorers, *(r[0] for r in seen)}):
            try:
                out[name] = scorer_class(name)
            except ScorerError:  # a name no longer registered: flagged by the scorers frame
                out[name] = None
        return out

    @cached_property
    def pinned_shas(self) -> dict[str, str]:
        from pipelines.scorers.nudenet_classifier import pinned_models

        models = pinned_models()
        return {
            name: models[cls.pinned_model]["sha256"]
            for name, cls in self.scorer_classes.items()
            if cls is not None and cls.weights == "pinned"
        }

    def _register_scorer_tables(self) -> None:
        """``cur_versions(scorer, scorer_version)`` and ``metric_specs`` (one row per known metric)."""
        if getattr(self, "_registered", False):
            return
        versions, specs = [], []
        for name, cls in self.scorer_classes.items():
            if cls is None:
                continue
            versions.append({"scorer": name, "scorer_version": cls.version})
            needs_baseline = "baseline" in cls.needs
            for metric in cls.metrics:
                rng = cls.metric_range(metric)
                specs.append(
                    {
                        "scorer": name,
                        "metric": metric,
                        "lo": None if rng is None else float(rng[0]),
                        "hi": None if rng is None else float(rng[1]),
                        "required": name in self.requested_scorers and metric not in cls.optional_metrics,
                        "needs_baseline": needs_baseline,
                        "nullable": metric in cls.nullable_metrics,
                    }
                )
        vschema = pa.schema([("scorer", pa.string()), ("scorer_version", pa.string())])
        mschema = pa.schema(
            [
                ("scorer", pa.string()),
                ("metric", pa.string()),
                ("lo", pa.float64()),
                ("hi", pa.float64()),
                ("required", pa.bool_()),
                ("needs_baseline", pa.bool_()),
                ("nullable", pa.bool_()),
            ]
        )
        self.con.register("cur_versions", pa.Table.from_pylist(versions, schema=vschema))
        self.con.register("metric_specs", pa.Table.from_pylist(specs, schema=mschema))
        from pipelines.scorers.nudenet import CLASSES

        self.con.register("detector_classes", pa.table({"class": list(CLASSES)}))
        self._registered = True

    @cached_property
    def expected_per_scorer(self) -> dict[str, tuple[int, int]]:
        """(metrics required for every generation, of which need a baseline image) per requested scorer."""
        out = {}
        for name in self.requested_scorers:
            cls = self.scorer_classes.get(name)
            if cls is None:
                out[name] = (1, 0)
                continue
            n = sum(1 for m in cls.metrics if m not in cls.optional_metrics)
            out[name] = (n, n if "baseline" in cls.needs else 0)
        return out

    # -- frames ------------------------------------------------------------------------------------------
    def _frame_run(self) -> pd.DataFrame:
        return self._df(
            "validation/run",
            [self.run_id],
        ).assign(all_batches_loaded=lambda d: (d.n_batches_loaded == d.n_batches) & d.marked_loaded)

    def planned_points(self) -> pa.Table:
        rows = []
        for m in self.spec.get("methods") or []:
            for level in m.get("levels") or []:
                rows.append(
                    {"method": m["name"], "method_label": m.get("label"), "level": level, "knob": None}
                )
            for k in m.get("knob") or []:
                rows.append(
                    {"method": m["name"], "method_label": m.get("label"), "level": "knob", "knob": float(k)}
                )
        schema = pa.schema(
            [
                ("method", pa.string()),
                ("method_label", pa.string()),
                ("level", pa.string()),
                ("knob", pa.float64()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def items_per_point(self) -> int:
        """Distinct (prompt text, seed) pairs times the run's models: what the planner generates for every
        method point (each model of a ``models:`` spec makes its own images)."""
        return self._items_per_model() * len(self.spec.get("models") or [None])

    def _items_per_model(self) -> int:
        seeds = self.spec.get("seeds")
        if seeds is not None:
            sql = query("validation/items_by_seeds")
            args = [self.run_id, [int(s) for s in seeds]]
        else:
            sql = query("validation/items_by_count")
            args = [
                self.run_id,
                int(self.spec.get("default_seed", 42)),
                int(self.spec.get("images_per_prompt", 1)),
            ]
        return int(self.con.execute(sql, args).fetchall()[0][0])

    def _frame_points(self) -> pd.DataFrame:
        self._register_scorer_tables()
        self.con.register("planned_points", self.planned_points())
        deg = self.scorer_classes.get("degenerate")
        return self._df(
            "validation/points",
            [self.run_id, self.items_per_point(), deg.version if deg is not None else ""],
        )

    def _frame_rebuilt(self) -> pd.DataFrame:
        """Each planned point rebuilt with ``pipelines.plan.build_point`` (models.registry) and hashed."""
        from models.concepts import load_pack
        from pipelines.plan import MethodPoint, build_point

        planned = self.planned_points().to_pylist()
        overrides = {
            (m["name"], m.get("label")): m.get("overrides") or {} for m in self.spec.get("methods") or []
        }
        try:
            pack, pack_error = load_pack(self.spec.get("concept", "toy")), None
        except Exception as exc:
            pack, pack_error = None, f"concept pack: {exc}"
        for row in planned:
            row["rebuilt_hash"], row["error"] = None, pack_error
            if pack is None:
                continue
            ov = tuple(sorted(overrides.get((row["method"], row["method_label"]), {}).items()))
            point = MethodPoint(row["method"], row["method_label"], row["level"], row["knob"], ov)
            try:
                row["rebuilt_hash"] = build_point(point, pack).config_hash()
            except Exception as exc:  # an unknown method or level in this checkout: the check fails, named
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.con.register("rebuilt_points", pa.Table.from_pylist(planned))
        df = self._df(
            "validation/rebuilt",
            [self.run_id],
        )
        return df.assign(config_rebuilds=df.stored_hashes == df.rebuilt_hash.fillna("<none>"))

    def _frame_batches(self) -> pd.DataFrame:
        return self._df(
            "validation/batches",
            [self.run_id],
        )

    def _frame_configs(self) -> pd.DataFrame:
        df = self._df(
            "validation/configs",
            [self.run_id],
        )
        memo: dict[tuple, tuple[bool, bool, bool, bool]] = {}  # a run has a handful of distinct configs
        flags = [
            memo[key] if key in memo else memo.setdefault(key, _config_flags(*key))
            for key in zip(
                df.method_config,
                df.config_hash,
                df.method,
                df.batch_config_hash,
                df.batch_method_config,
                strict=True,
            )
        ]
        json_ok, hash_ok, method_ok, batch_ok = (
            (list(x) for x in zip(*flags, strict=True)) if flags else ([],) * 4
        )
        return df.assign(
            config_json_ok=json_ok,
            config_hash_ok=hash_ok,
            config_method_ok=method_ok,
            config_batch_ok=batch_ok,
        )

    def _frame_scorers(self) -> pd.DataFrame:
        """Per scorer: versions and model shas of rows the run's batches wrote, and of the rows it uses."""
        self._register_scorer_tables()
        written = {
            r[0]: (r[1], r[2], r[3])
            for r in self.con.execute(
                query("validation/scorers_written"),
                [self.run_id],
            ).fetchall()
        }
        used = dict(
            self.con.execute(
                query("validation/scorers_used"),
                [self.run_id],
            ).fetchall()
        )
        rows = []
        for name in sorted(set(self.requested_scorers) | set(written)):
            cls = self.scorer_classes.get(name)
            versions, shas, n_rows = written.get(name, ([], [], 0))
            pinned_version = cls.version if cls is not None else None
            if name in self.pinned_shas:
                pinned_sha = self.pinned_shas[name]
            elif cls is not None and cls.weights == "none":
                pinned_sha = ""
            else:
                pinned_sha = None  # recorded, not pinned
            rows.append(
                {
                    "scorer": name,
                    "requested": name in self.requested_scorers,
                    "n_rows_written": int(n_rows),
                    "versions": ",".join(versions),
                    "model_sha256s": ",".join(s or "<none>" for s in shas),
                    "pinned_version": pinned_version,
                    "pinned_sha256": "<none>" if pinned_sha == "" else pinned_sha,
                    "version_ok": cls is not None and all(v == pinned_version for v in versions),
                    "model_sha_ok": pinned_sha is None or all(s == pinned_sha for s in shas),
                    "consistent": len(versions) <= 1 and len(shas) <= 1 and used.get(name, 0) <= 1,
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "scorer",
                "requested",
                "n_rows_written",
                "versions",
                "model_sha256s",
                "pinned_version",
                "pinned_sha256",
                "version_ok",
                "model_sha_ok",
                "consistent",
            ],
        )

    def _frame_generations(self) -> pd.DataFrame:
        self._register_scorer_tables()
        n_scorers = len(self.requested_scorers)
        n_metrics = sum(n for n, _ in self.expected_per_scorer.values())
        n_scorers_baseline = sum(1 for n, b in self.expected_per_scorer.values() if b)
        n_metrics_baseline = sum(b for _, b in self.expected_per_scorer.values())
        df = self._df(
            "validation/generations",
            [
                self.run_id,
                self.params.allow_documented_nulls,
                n_scorers,
                n_scorers_baseline,
                n_metrics,
                n_metrics_baseline,
            ],
        )
        if self.params.check_images:
            from pipelines.expectations.images import check_images

            files, self.image_stats = check_images(self.con, self.run_id, self.params, self.artifacts)
            df = df.merge(files, on="generation_id", how="left", validate="many_to_one")
        return df
