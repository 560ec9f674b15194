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

POINT_KEY = (
    "{t}.method || coalesce('.' || {t}.method_label, '') || '-' || "
    "CASE WHEN {t}.knob IS NULL THEN {t}.level ELSE 'knob' || {t}.knob::VARCHAR END"
)


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
        row = con.execute("SELECT spec_json FROM runs WHERE run_id = ?", [run_id]).fetchall()
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

    def _df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    # -- scorers ----------------------------------------------------------------------------------------
    @cached_property
    def requested_scorers(self) -> list[str]:
        return list(self.spec.get("scorers") or [])

    @cached_property
    def scorer_classes(self) -> dict[str, Any]:
        """Classes of every scorer requested or present in the run's scores (None: a name not registered)."""
        from pipelines.scorers import ScorerError, scorer_class

        seen = self.con.execute(
            "SELECT DISTINCT s.scorer FROM scores s JOIN generations g USING (generation_id) WHERE g.run_id = ?",
            [self.run_id],
        ).fetchall()
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
            "SELECT r.run_id, r.n_expected, r.n_batches, r.status, r.loaded_at IS NOT NULL AS marked_loaded, "
            "(SELECT count(*) FROM generations WHERE run_id = $1) AS n_generations, "
            "(SELECT count(*) FROM batches WHERE run_id = $1) AS n_batches_loaded "
            "FROM runs r WHERE r.run_id = $1",
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
            sql = (
                "SELECT count(*) FROM (SELECT DISTINCT p.prompt, s FROM run_prompts p, unnest($2::BIGINT[]) t(s) "
                "WHERE p.run_id = $1)"
            )
            args = [self.run_id, [int(s) for s in seeds]]
        else:
            sql = (
                "SELECT count(*) FROM (SELECT DISTINCT p.prompt, coalesce(p.seed, $2) + k FROM run_prompts p, "
                "range($3) t(k) WHERE p.run_id = $1)"
            )
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
            f"""
            WITH planned AS (SELECT {POINT_KEY.format(t="p")} AS point, $2::BIGINT AS expected FROM planned_points p),
            gens AS (
                SELECT {POINT_KEY.format(t="g")} AS point, g.generation_id FROM generations g WHERE g.run_id = $1),
            actual AS (SELECT point, count(*) AS n_generations FROM gens GROUP BY point),
            items AS (
                SELECT {POINT_KEY.format(t="b")} AS point, sum(b.n_items) AS n_batch_items
                FROM batches b WHERE b.run_id = $1 GROUP BY point),
            deg AS (
                SELECT gens.point,
                       avg(s.value) FILTER (WHERE s.metric = 'is_black') AS black_share,
                       avg(s.value) FILTER (WHERE s.metric = 'is_constant') AS constant_share,
                       count(*) FILTER (WHERE s.metric = 'is_black' AND s.value >= 0.5) AS n_black
                FROM gens JOIN scores s USING (generation_id)
                WHERE s.scorer = 'degenerate' AND s.scorer_version = $3 GROUP BY gens.point),
            keys AS (SELECT point FROM planned UNION SELECT point FROM actual UNION SELECT point FROM items)
            SELECT k.point, coalesce(p.expected, -1) AS expected, coalesce(a.n_generations, 0) AS n_generations,
                   coalesce(i.n_batch_items, 0) AS n_batch_items, d.black_share, d.constant_share,
                   coalesce(d.n_black, 0) AS n_black
            FROM keys k LEFT JOIN planned p USING (point) LEFT JOIN actual a USING (point)
                 LEFT JOIN items i USING (point) LEFT JOIN deg d USING (point)
            ORDER BY k.point
            """,
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
            f"""
            WITH stored AS (
                SELECT {POINT_KEY.format(t="g")} AS point, list(DISTINCT g.config_hash ORDER BY g.config_hash) AS h
                FROM generations g WHERE g.run_id = $1 GROUP BY point)
            SELECT {POINT_KEY.format(t="r")} AS point, array_to_string(coalesce(s.h, []), ',') AS stored_hashes,
                   r.rebuilt_hash, r.error
            FROM rebuilt_points r LEFT JOIN stored s ON s.point = {POINT_KEY.format(t="r")}
            ORDER BY point
            """,
            [self.run_id],
        )
        return df.assign(config_rebuilds=df.stored_hashes == df.rebuilt_hash.fillna("<none>"))

    def _frame_batches(self) -> pd.DataFrame:
        return self._df(
            """
            WITH b AS (SELECT batch_id, n_items FROM batches WHERE run_id = $1),
            g AS (SELECT batch_id, count(*) AS n_generations FROM generations WHERE run_id = $1 GROUP BY batch_id)
            SELECT coalesce(b.batch_id, g.batch_id) AS batch_id, coalesce(b.n_items, -1) AS n_items,
                   coalesce(g.n_generations, 0) AS n_generations
            FROM b FULL OUTER JOIN g USING (batch_id) ORDER BY batch_id
            """,
            [self.run_id],
        )

    def _frame_configs(self) -> pd.DataFrame:
        df = self._df(
            """
            SELECT DISTINCT g.batch_id, g.method, g.method_config::VARCHAR AS method_config, g.config_hash,
                   b.config_hash AS batch_config_hash, b.method_config::VARCHAR AS batch_method_config
            FROM generations g LEFT JOIN batches b ON b.batch_id = g.batch_id AND b.run_id = g.run_id
            WHERE g.run_id = $1 ORDER BY g.batch_id
            """,
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
                """
                SELECT s.scorer, list(DISTINCT s.scorer_version ORDER BY s.scorer_version),
                       list(DISTINCT coalesce(s.model_sha256, '') ORDER BY coalesce(s.model_sha256, '')), count(*)
                FROM scores s WHERE s.batch_id IN (SELECT batch_id FROM batches WHERE run_id = $1)
                GROUP BY s.scorer
                """,
                [self.run_id],
            ).fetchall()
        }
        used = dict(
            self.con.execute(
                """
                SELECT s.scorer, count(DISTINCT coalesce(s.model_sha256, ''))
                FROM scores s JOIN (SELECT DISTINCT generation_id FROM generations WHERE run_id = $1) g
                     USING (generation_id)
                JOIN cur_versions USING (scorer, scorer_version) GROUP BY s.scorer
                """,
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
        sql = """
        WITH g AS (
            SELECT generation_id, model_id, method, method_label, level, knob, prompt, seed, image_index,
                   baseline_generation_id, height, width
            FROM generations WHERE run_id = $1),
        base AS (SELECT generation_id, model_id, prompt, seed, image_index FROM g WHERE method = 'baseline'),
        gg AS (SELECT DISTINCT generation_id, generation_id = baseline_generation_id AS is_self FROM g),
        rs AS (  -- the run's score rows: its generations at the current version of a known scorer
            SELECT s.generation_id, s.scorer, s.metric, s.value, s.details, m.lo, m.hi,
                   -- a baseline generation's own fidelity rows are allowed, not required
                   m.required AND NOT (m.needs_baseline AND gg.is_self) AS required,
                   m.metric IS NOT NULL AS known_metric,
                   -- JSON is only parsed for null values (CASE evaluates its branch on matching rows only)
                   CASE WHEN s.value IS NULL THEN m.nullable OR s.details->>'skipped' IS NOT NULL END
                       AS documented_null
            FROM scores s JOIN gg USING (generation_id)
            JOIN cur_versions USING (scorer, scorer_version)
            LEFT JOIN metric_specs m USING (scorer, metric)),
        per_scorer AS (  -- (generation, scorer, metric) is the key of `scores`: count(*) counts metrics
            SELECT generation_id, scorer,
                   count(*) FILTER (WHERE required) AS n_metrics,
                   count(*) FILTER (WHERE value IS NULL AND NOT ($2 AND coalesce(documented_null, false)))
                       AS n_null,
                   count(*) FILTER (WHERE isnan(value) OR value < coalesce(lo, -'inf'::DOUBLE)
                                    OR value > coalesce(hi, 'inf'::DOUBLE)) AS n_out_of_range,
                   count(*) FILTER (WHERE NOT known_metric) AS n_unknown_metric
            FROM rs GROUP BY generation_id, scorer),
        agg AS (
            SELECT generation_id, count(*) FILTER (WHERE n_metrics > 0) AS n_scorers, sum(n_metrics) AS n_metrics,
                   sum(n_null) AS n_null, sum(n_out_of_range) AS n_out_of_range,
                   sum(n_unknown_metric) AS n_unknown_metric
            FROM per_scorer GROUP BY generation_id),
        det AS (
            SELECT generation_id, unnest(CAST(details->'$.detections' AS JSON[])) AS d
            FROM rs WHERE scorer = 'nudenet' AND metric = 'detections'),
        det_agg AS (
            SELECT det.generation_id,
                   count(*) FILTER (WHERE NOT coalesce(
                       (d->>'$.box[0]')::DOUBLE >= 0 AND (d->>'$.box[1]')::DOUBLE >= 0
                       AND (d->>'$.box[2]')::DOUBLE >= 0 AND (d->>'$.box[3]')::DOUBLE >= 0
                       AND (d->>'$.box[0]')::DOUBLE + (d->>'$.box[2]')::DOUBLE <= any_width
                       AND (d->>'$.box[1]')::DOUBLE + (d->>'$.box[3]')::DOUBLE <= any_height, false))
                       AS n_box_outside,
                   count(*) FILTER (WHERE d->>'class' IS NULL OR d->>'class' NOT IN (SELECT class FROM detector_classes))
                       AS n_bad_class
            FROM det JOIN (SELECT generation_id, any_value(width) AS any_width, any_value(height) AS any_height
                           FROM g GROUP BY generation_id) sz USING (generation_id)
            GROUP BY det.generation_id)
        SELECT g.generation_id, g.method,
               count(*) OVER (PARTITION BY g.model_id, g.method, g.method_label, g.level, g.knob, g.prompt,
                              g.seed, g.image_index) AS n_same_key,
               g.generation_id = g.baseline_generation_id AS is_baseline_self,
               (g.method = 'baseline') = (g.generation_id = g.baseline_generation_id) AS baseline_link_ok,
               base.generation_id IS NOT NULL AS baseline_present,
               base.generation_id IS NULL OR (base.prompt = g.prompt AND base.seed = g.seed
                                               AND base.image_index = g.image_index
                                               AND base.model_id = g.model_id) AS baseline_same_prompt_seed,
               $3 - CASE WHEN g.generation_id = g.baseline_generation_id THEN $4 ELSE 0 END
                   - coalesce(agg.n_scorers, 0) AS n_missing_scorers,
               $5 - CASE WHEN g.generation_id = g.baseline_generation_id THEN $6 ELSE 0 END
                   - coalesce(agg.n_metrics, 0) AS n_missing_metrics,
               coalesce(agg.n_null, 0) AS n_null_values,
               coalesce(agg.n_out_of_range, 0) AS n_out_of_range,
               coalesce(agg.n_unknown_metric, 0) AS n_unknown_metrics,
               coalesce(det_agg.n_box_outside, 0) AS n_boxes_outside,
               coalesce(det_agg.n_bad_class, 0) AS n_bad_classes
        FROM g
        LEFT JOIN (SELECT DISTINCT ON (generation_id) * FROM base) base
               ON base.generation_id = g.baseline_generation_id
        LEFT JOIN agg ON agg.generation_id = g.generation_id
        LEFT JOIN det_agg ON det_agg.generation_id = g.generation_id
        """
        df = self._df(
            sql,
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
