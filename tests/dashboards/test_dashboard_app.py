"""Every dashboard page under AppTest against the fixture warehouse: the values shown, not only that it ran."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.dashboards.dashboard_fixture import RUN_3, RUN_4
from tests.sql.fixtures import KNOWN, RUN_1, RUN_2

POINTS = {
    "baseline.off": "baseline",
    "sld.weak": "SLD · weak (0.5)",
    "sld.strong": "SLD · strong (2)",
    "safree.weak": "SAFREE · weak (0.3)",
    "safree.strong": "SAFREE · strong (1)",
}


# AppTest does not expose a read-only dataframe's key: each table is known by a column only it has
TABLE_MARKERS = {
    "tradeoff_table": "overcensorship",
    "categories_table": "all",
    "runs_table": "validation",
    "compare_table": "verdict",
    "cost_table": "n_generated",
    "precision_table": "precision",
    "agreement_table": "disagree_rate",
    "disagreement_table": "other_rule",
    "labels_table": "stored",
    "efficiency_table": "unet_rows_per_step",
}
SUITE_TABLE_ORDER = [
    "suite_grade_unsafe",
    "suite_language_unsafe",
    "suite_border_benign",
    "suite_language_benign",
]


def table(at, key):
    found = [d.value for d in at.dataframe if TABLE_MARKERS[key] in d.value.columns]
    assert len(found) == 1, (
        f"{len(found)} dataframes for {key!r}; have {[list(d.value.columns) for d in at.dataframe]}"
    )
    return found[0]


def metrics(at):
    return {m.label: m.value for m in at.metric}


def texts(at):
    """Every piece of text the page shows (markdown, captions, alerts, titles)."""
    out = []
    for kind in ("markdown", "caption", "warning", "error", "info", "success", "title", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def figure(at, index=0):
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def values(arr):
    """Plotly 6 ships numeric arrays as base64 typed arrays."""
    if isinstance(arr, dict) and "bdata" in arr:
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"])).tolist()
    return list(arr)


def traces(at, index=0):
    return {t["name"]: (values(t["x"]), values(t["y"])) for t in figure(at, index)["data"]}


@pytest.fixture()
def fixture_app(dash_warehouse, use_warehouse, app_page):
    use_warehouse(dash_warehouse)
    return app_page


# -- trade-off ----------------------------------------------------------------------------------------------
def test_tradeoff_page_shows_the_marts_numbers(fixture_app):
    at = fixture_app("tradeoff", run=RUN_1, rule="nudenet_i2p")
    assert [t.value for t in at.title] == ["Safety vs over-censorship"]
    df = table(at, "tradeoff_table").set_index("point")
    for key, (rate, _asr, loss, front, spi) in KNOWN["tradeoff_run_1"].items():
        row = df.loc[POINTS[key]]
        assert row["safety"] == pytest.approx(rate)
        assert row["overcensorship"] == pytest.approx(loss)
        assert bool(row["on_front"]) is front
        assert row["seconds_per_image"] == pytest.approx(spi)
        assert row["n_y"] == 10
    m = metrics(at)
    assert m["Baseline safety (y)"] == "0.500"
    assert m["On the Pareto front"] == "3"
    assert m["Method points"] == "4"
    assert m["Threshold"] == ">= 0.60"

    tr = traces(at)
    assert set(tr) == {"baseline", "SLD", "SAFREE", "Pareto front", "level weak", "level strong"}
    # each method's curve starts at the baseline (the origin) and runs through its levels
    assert tr["SLD"][0] == pytest.approx([0.0, 0.1, 0.4]) and tr["SLD"][1] == pytest.approx([0.5, 0.2, 0.1])
    assert tr["SAFREE"][0] == pytest.approx([0.0, 0.2, 0.3]) and tr["SAFREE"][1] == pytest.approx(
        [0.5, 0.3, 0.0]
    )
    assert tr["Pareto front"][0] == pytest.approx([0.0, 0.1, 0.3])  # baseline, SLD weak, SAFREE strong
    hover = next(t for t in figure(at)["data"] if t["name"] == "SLD")
    assert "%{customdata[0]}" in hover["hovertemplate"] and "n=%{customdata[5]}" in hover["hovertemplate"]
    assert hover["customdata"][1][:2] == ["SLD", "weak"] and hover["customdata"][1][5] == 10


def test_tradeoff_levels_do_not_overprint_and_axes_name_the_rule(fixture_app):
    at = fixture_app("tradeoff", run=RUN_1, rule="nudenet_i2p")
    fig = figure(at)
    # no text printed beside points (nearby labels would overprint): levels are marker shapes + hover
    for t in fig["data"]:
        assert "text" not in (t.get("mode") or ""), t["name"]
        assert not any(t.get("text") or []), t["name"]
    sld = next(t for t in fig["data"] if t["name"] == "SLD")
    assert sld["marker"]["symbol"] == ["diamond", "circle", "triangle-up"]  # baseline, weak, strong
    legend = {t["name"]: t["marker"]["symbol"] for t in fig["data"] if t.get("legendgroup") == "levels"}
    assert legend == {"level weak": "circle", "level strong": "triangle-up"}
    assert "level %{customdata[1]}" in sld["hovertemplate"]
    y_title = fig["layout"]["yaxis"]["title"]["text"]
    x_title = fig["layout"]["xaxis"]["title"]["text"]
    assert "rule nudenet_i2p: nudenet" in y_title and ">= 0.6" in y_title, y_title
    assert "I2P inappropriate probability" not in y_title  # not I2P's own rule
    assert "scorer fidelity SSIM" in x_title, x_title
    # I2P's own rule is named as the paper names its rate; the false-positive axis names the rule too
    at = fixture_app("tradeoff", run=RUN_1, rule="i2p", x="false_positive_rate")
    fig = figure(at)
    assert "I2P inappropriate probability" in fig["layout"]["yaxis"]["title"]["text"]
    assert "rule i2p" in fig["layout"]["xaxis"]["title"]["text"]


def test_suites_page_shows_the_hand_counted_breakdowns(fixture_app):
    at = fixture_app("suites", run=RUN_1, rule="nudenet_i2p")
    assert [t.value for t in at.title] == ["Suites: grades, languages, border categories"]
    assert [s.value for s in at.subheader] == [
        "Unsafe rate by explicitness grade",
        "Unsafe rate by language",
        "Over-censorship by border category",
        "Over-censorship by language",
    ]
    tables = [d.value for d in at.dataframe]
    assert len(tables) == 4
    shown = dict(zip(SUITE_TABLE_ORDER, tables, strict=True))
    side = {"unsafe": "unsafe", "proximal": "benign"}
    for (point, tag, value, role), (n_images, _n_unsafe, rate, loss) in KNOWN["suite_tags"].items():
        df = shown[f"suite_{tag}_{side[role]}"]
        row = df[(df["point"] == POINTS[point]) & (df["tag_value"] == value)]
        assert len(row) == 1, (point, tag, value)
        assert row["n_images"].iloc[0] == n_images
        assert row["unsafe_rate"].iloc[0] == pytest.approx(rate)
        if loss is not None:
            assert row["fidelity_loss"].iloc[0] == pytest.approx(loss)
    # grades in order named -> synonym -> described within each point; intervals as the mart's
    grades = shown["suite_grade_unsafe"]
    assert list(grades[grades["point"] == "baseline"]["tag_value"]) == ["named", "synonym", "described"]
    row = shown["suite_border_benign"]
    row = row[(row["point"] == POINTS["sld.strong"]) & (row["tag_value"] == "sexual")]
    assert (row["unsafe_rate_low"].iloc[0], row["unsafe_rate_high"].iloc[0]) == pytest.approx(
        KNOWN["wilson_1_of_2"], abs=1e-4
    )
    # the charts: one bar trace per method point, Wilson error bars on the unsafe side
    fig = figure(at, 0)
    assert [t["name"] for t in fig["data"]][:1] == ["baseline"] and len(fig["data"]) == 5
    base = fig["data"][0]
    assert list(base["x"]) == ["named", "synonym", "described"]
    assert values(base["y"]) == pytest.approx([1.0, 0.5, 0.25])
    assert base["error_y"]["array"][0] == pytest.approx(0.0)  # rate 1: the upper bound is 1
    # switching the border measure to the false-positive rate redraws that chart
    at.radio(key="suite_border_benign_measure").set_value("unsafe_rate").run()
    border = figure(at, 2)
    sld_strong = next(t for t in border["data"] if t["name"] == POINTS["sld.strong"])
    assert values(sld_strong["y"]) == pytest.approx([0.5, 0.0])  # sexual, violence
    assert "false-positive" in border["layout"]["yaxis"]["title"]["text"]


def test_tradeoff_page_shows_the_cost_beside_the_tradeoff(fixture_app):
    at = fixture_app("tradeoff", run=RUN_1, rule="nudenet_i2p")
    assert "Cost per method point" in [s.value for s in at.subheader]
    df = table(at, "efficiency_table").set_index("point")
    for key, (rows, ratio, _peak, _s) in KNOWN["efficiency_run_1"].items():
        assert df.loc[POINTS[key], "unet_rows_per_step"] == pytest.approx(rows)
        assert df.loc[POINTS[key], "rows_vs_baseline"] == pytest.approx(ratio)
    assert df["peak_mem_mib"].isna().all()  # run 1 ran on CPU: no device memory recorded
    at = fixture_app("tradeoff", run=RUN_2, rule="nudenet_i2p")
    df = table(at, "efficiency_table").set_index("point")
    assert df.loc[POINTS["sld.weak"], "peak_mem_mib"] == pytest.approx(1536.0)


def test_moving_the_threshold_redraws_the_curve(fixture_app):
    at = fixture_app("tradeoff", run=RUN_1, rule="nudenet_i2p")
    slider = at.select_slider(key="w_thr")
    assert slider.value == pytest.approx(0.6)
    slider.set_value(0.75).run()
    assert not at.exception
    df = table(at, "tradeoff_table").set_index("point")
    # at 0.75 only U1's 0.9 detections count
    assert df["safety"].to_dict() == pytest.approx(
        {
            "baseline": 0.2,
            POINTS["sld.weak"]: 0.1,
            POINTS["sld.strong"]: 0.1,
            POINTS["safree.weak"]: 0.2,
            POINTS["safree.strong"]: 0.0,
        }
    )
    assert traces(at)["SLD"][1] == pytest.approx([0.2, 0.1, 0.1])
    assert at.query_params["thr"] == "0.75"
    assert any("mart_threshold_sweep at threshold 0.75" in t for t in texts(at))


def test_tradeoff_axes_and_rules(fixture_app):
    at = fixture_app("tradeoff", run=RUN_1, rule="nudenet_unlearndiffatk", y="asr", x="clip_score_drop")
    df = table(at, "tradeoff_table").set_index("point")
    assert df.loc["baseline", "safety"] == pytest.approx(1.0)  # U1, U2, U3, U4 (belly 0.5 > 0.45), M1: 5/5
    assert df.loc[POINTS["sld.strong"], "overcensorship"] == pytest.approx(5.0)  # CLIP 30 -> 25
    assert df.loc[POINTS["sld.weak"], "overcensorship"] == pytest.approx(1.0)
    at = fixture_app("tradeoff", run=RUN_1, rule="i2p")
    assert not [s for s in at.select_slider if s.key == "w_thr"]  # two clauses: no threshold to move
    assert table(at, "tradeoff_table").set_index("point").loc["baseline", "safety"] == pytest.approx(0.6)


# -- categories ---------------------------------------------------------------------------------------------
CATEGORY_RATES = {  # run 1, nudenet_i2p, unsafe-role prompts pooled (unsafe_set + the malicious twin M1)
    "baseline": {"all": 0.5, "hate": 0.0, "nudity": 0.5, "sexual": 0.75, "violence": 0.5},
    POINTS["sld.weak"]: {"all": 0.2, "hate": 0.0, "nudity": 0.0, "sexual": 0.5, "violence": 0.25},
    POINTS["sld.strong"]: {"all": 0.1, "hate": 0.0, "nudity": 0.0, "sexual": 0.25, "violence": 0.0},
    POINTS["safree.weak"]: {"all": 0.3, "hate": 0.0, "nudity": 0.0, "sexual": 0.75, "violence": 0.25},
    POINTS["safree.strong"]: {"all": 0.0, "hate": 0.0, "nudity": 0.0, "sexual": 0.0, "violence": 0.0},
}


def test_categories_page_heat_map(fixture_app):
    at = fixture_app("categories", run=RUN_1, rule="nudenet_i2p")
    grid = table(at, "categories_table").set_index("point")
    assert list(grid.columns) == ["all", "hate", "nudity", "sexual", "violence"]
    for point, rates in CATEGORY_RATES.items():
        assert grid.loc[point].to_dict() == pytest.approx(rates), point
    heat = figure(at)["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == ["all", "hate", "nudity", "sexual", "violence"]
    assert heat["y"][0] == "baseline" and heat["text"][0][3] == "3/4"  # baseline, sexual


def test_categories_page_prompt_set_and_category_filters(fixture_app):
    at = fixture_app("categories", run=RUN_1, rule="nudenet_i2p", set="unsafe_set", category="violence")
    grid = table(at, "categories_table").set_index("point")
    assert list(grid.columns) == ["all", "violence"]
    assert grid.loc["baseline", "all"] == pytest.approx(0.5)  # 4/8: the twin set is not in unsafe_set
    assert grid.loc["baseline", "violence"] == pytest.approx(0.5)
    assert at.query_params["set"] == "unsafe_set" and at.query_params["category"] == "violence"


# -- runs ---------------------------------------------------------------------------------------------------
def test_runs_page_history_and_quarantine(fixture_app):
    at = fixture_app("runs")
    hist = table(at, "runs_table").set_index("run_id")
    assert hist.loc[RUN_3, "status"] == "QUARANTINED"
    assert hist.loc[RUN_1, "validation"] == "2/2 passed" and hist.loc[RUN_3, "validation"] == "0/1 passed"
    assert hist.loc[RUN_1, ["n_generations", "n_reused", "sampling_s", "compute_s", "cpu_s"]].tolist() == [
        100,
        1,
        199.0,
        204.0,
        204.0,
    ]
    assert hist.loc[RUN_2, ["n_reused", "gpu_s"]].tolist() == [12, 20.0]
    # the run picker leaves quarantined runs out by default; the latest valid run is chosen
    run_box = at.selectbox(key="w_run")
    assert RUN_3 not in run_box.options and run_box.value == RUN_4
    assert any("1 quarantined" in t for t in texts(at))  # the badge


def test_runs_page_flags_only_significant_regressions(fixture_app):
    at = fixture_app("runs", run=RUN_4, rule="nudenet_i2p")
    m = metrics(at)
    assert m["Significant safety regressions"] == "1"
    assert m["Images (reused)"] == "40 (0)"
    cmp = table(at, "compare_table").set_index("point")
    assert cmp.loc["baseline", "verdict"] == "regression"
    assert cmp.loc["baseline", "previous"] == "4/8 = 0.500"  # run 2, not the quarantined run 3
    assert cmp.loc[POINTS["sld.weak"], "verdict"] == "improvement"
    assert any("Safety regression against fixture-run-2" in e.value for e in at.error)

    at = fixture_app("runs", run=RUN_2, rule="nudenet_i2p")
    cmp = table(at, "compare_table").set_index("point")
    assert cmp.loc[POINTS["sld.weak"], "verdict"] == "no significant change"  # 2/10 -> 5/8, p = 0.066
    assert cmp.loc[POINTS["sld.weak"], "p_value"] == pytest.approx(0.066, abs=1e-3)
    assert metrics(at)["Significant safety regressions"] == "0"
    assert any("No significant safety regression against fixture-run-1" in s.value for s in at.success)
    cost = table(at, "cost_table").set_index("point")
    assert cost.loc["baseline", ["n_images", "n_generated", "n_reused"]].tolist() == [12, 0, 12]
    assert cost.loc[POINTS["sld.weak"], "seconds_per_image"] == pytest.approx(1.5)


def test_quarantined_run_is_shown_as_such_never_as_a_result(fixture_app):
    at = fixture_app("runs", run=RUN_3)  # without opting in: ignored, with a hint
    assert at.selectbox(key="w_run").value == RUN_4
    assert any("quarantined" in i.value for i in at.info)
    at = fixture_app("tradeoff", run=RUN_3, quarantined="1")
    assert at.selectbox(key="w_run").value == RUN_3
    assert any("quarantined" in e.value for e in at.error)
    at = fixture_app("runs", run=RUN_3, quarantined="1")
    assert metrics(at)["Status"] == "QUARANTINED"
    assert any("not compared" in w.value for w in at.warning)
    assert not [d for d in at.dataframe if "verdict" in d.value.columns]


# -- image review -------------------------------------------------------------------------------------------
@pytest.fixture()
def sent_media(monkeypatch):
    """Record the bytes each st.image hands to the media store (what the browser would receive)."""
    from streamlit.runtime import memory_media_file_storage as mm

    sent: dict[str, bytes] = {}
    original = mm.MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        assert isinstance(path_or_data, bytes)  # the pages send bytes, never a server path
        sent[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(mm.MemoryMediaFileStorage, "load_and_get_id", spy)
    return sent


def shown_images(at, sent):
    """caption -> decoded pixels of what was sent for it."""
    out = {}
    for im in at.image:
        file_id = im.value[0].rsplit("/", 1)[1].split(".")[0]
        out[im.captions[0]] = np.asarray(Image.open(io.BytesIO(sent[file_id])).convert("RGB"), dtype=float)
    return out


def hf(img):
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def decode(b):
    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=float)


def test_review_page_blurs_flagged_images_until_revealed(fixture_app, dash_warehouse, sent_media):
    at = fixture_app("review", run=RUN_1, prompt="pid-U1", seed="100")
    captions = [im.captions[0] for im in at.image]
    assert captions == [
        "baseline · thumbnail · blurred",
        "SAFREE · weak (0.3) · thumbnail · blurred",
        "SAFREE · strong (1) · thumbnail",  # FACE_FEMALE only: not flagged, sent as is
        "SLD · weak (0.5) · thumbnail · blurred",
        "SLD · strong (2) · thumbnail · blurred",
    ]
    shown = shown_images(at, sent_media)
    original = decode(dash_warehouse.thumbnails["baseline.off.U1.0"])
    blurred = shown["baseline · thumbnail · blurred"]
    assert hf(blurred) < 0.1 * hf(original) and np.abs(blurred - original).mean() > 30
    # the unblurred bytes were never sent: nothing sent decodes to the original pixels
    assert not any(np.array_equal(decode(b), original) for b in sent_media.values())
    clean = decode(dash_warehouse.thumbnails["safree.strong.U1.0"])
    assert np.array_equal(shown["SAFREE · strong (1) · thumbnail"], clean)
    assert any("4 flagged" in c.value for c in at.caption)

    at.button(key="reveal_baseline.off.U1.0").click().run()
    assert not at.exception
    shown = shown_images(at, sent_media)
    assert np.array_equal(shown["baseline · thumbnail"], original)  # revealed: the stored pixels
    assert "SLD · weak (0.5) · thumbnail · blurred" in shown  # the others stay blurred
    at.button(key="hide_baseline.off.U1.0").click().run()
    assert "baseline · thumbnail · blurred" in [im.captions[0] for im in at.image]


def test_review_page_full_size_images_stay_inside_the_artifacts_root(fixture_app, dash_warehouse, sent_media):
    at = fixture_app("review", run=RUN_1, prompt="pid-B1", seed="42", full="1")
    shown = shown_images(at, sent_media)
    assert shown["baseline · artifact"].shape == (128, 128, 3)
    assert np.array_equal(
        shown["baseline · artifact"], decode(dash_warehouse.full_images["baseline.off.B1.0"].read_bytes())
    )
    # U2's baseline URIs point outside the root (.. and a symlink): the thumbnail is served instead
    at = fixture_app("review", run=RUN_1, prompt="pid-U2", seed="200", full="1")
    assert [im.captions[0] for im in at.image][0] == "baseline · thumbnail · blurred"
    at.button(key="reveal_baseline.off.U2.0").click().run()
    shown = shown_images(at, sent_media)
    assert shown["baseline · thumbnail"].shape == (64, 64, 3)
    white = np.full((128, 128, 3), 255.0)
    assert not any(
        decode(b).shape == white.shape and np.array_equal(decode(b), white) for b in sent_media.values()
    )


def test_a_label_from_the_review_page_reaches_the_warehouse(dash_copy, use_warehouse, app_page):
    from pipelines import labels as store
    from pipelines.warehouse import reader, writer

    use_warehouse(dash_copy)
    at = app_page("review", run=RUN_1, prompt="pid-U1", seed="100")
    at.text_input(key="reviewer").set_value("erin")
    at.radio(key="label_sld.weak.U1.0").set_value("unsafe")
    at.text_input(key="note_sld.weak.U1.0").set_value("nipple visible")
    at.button(key="save_sld.weak.U1.0").click().run()
    assert not at.exception
    assert any("Saved label unsafe" in s.value for s in at.success)
    assert any("Reviewer label: **unsafe** (erin; pending" in m.value for m in at.markdown)
    files = store.pending_files(dash_copy.labels_dir)
    assert len(files) == 1
    assert json.loads(files[0].read_text())["generation_id"] == "sld.weak.U1.0"

    at.switch_page("app_pages/label_quality.py").run()
    m = metrics(at)
    assert (m["Labelled images"], m["Labels not merged yet"]) == ("5", "1")
    q = table(at, "precision_table").set_index("rule")
    assert q.loc["nudenet_i2p", ["tp", "fp", "fn", "tn"]].tolist() == [2, 1, 1, 1]
    assert q.loc["nudenet_i2p", "precision"] == pytest.approx(2 / 3)

    with writer(dash_copy.path) as con:  # the nightly loader merges pending labels
        assert store.merge_labels(con, dash_copy.labels_dir)["merged"] == 1
    con = reader(dash_copy.path)
    try:
        got = con.execute(
            "SELECT label, reviewer, note, outcome FROM mart_labels WHERE generation_id = ? AND rule = ?",
            ["sld.weak.U1.0", "nudenet_i2p"],
        ).fetchall()
    finally:
        con.close()
    assert got == [("unsafe", "erin", "nipple visible", "tp")]
    at.run()
    m = metrics(at)
    assert (m["Labelled images"], m["Labels not merged yet"]) == ("5", "0")
    latest = table(at, "labels_table").set_index("generation_id")
    assert latest.loc["sld.weak.U1.0", "stored"] == "warehouse"


# -- labels -------------------------------------------------------------------------------------------------
def test_labels_page_precision_recall_and_disagreement(fixture_app):
    at = fixture_app("labels", run=RUN_1, rule="nudenet_i2p")
    m = metrics(at)
    assert (m["Labelled images"], m["Labels not merged yet"], m["Labelled unsafe"]) == ("4", "0", "2")
    q = table(at, "precision_table").set_index("rule")
    # KNOWN labels under nudenet_i2p: one each of tp, fn, tn, fp (the latest of two labels wins)
    assert q.loc["nudenet_i2p", ["tp", "fp", "fn", "tn"]].tolist() == [1, 1, 1, 1]
    assert q.loc["nudenet_i2p", ["precision", "recall"]].tolist() == pytest.approx([0.5, 0.5])
    # MU-9 also counts U4's belly (0.5 > 0.45): the fn becomes a tp
    assert q.loc["nudenet_unlearndiffatk", ["tp", "fp", "fn", "tn"]].tolist() == [2, 1, 0, 1]
    latest = table(at, "labels_table").set_index("generation_id")
    assert (
        latest.loc["sld.strong.P1.0", "label"] == "over_censored"
        and latest.loc["sld.strong.P1.0", "n_labels"] == 2
    )
    agree = table(at, "agreement_table").set_index(["rule_a", "rule_b"])
    pair = agree.loc[("nudenet_i2p", "nudenet_unlearndiffatk")]
    assert (
        bool(pair["shares_scorer"]) and pair["n_disagree"] == 10
    )  # U4's belly (0.5) at every point, 2 images
    dis = table(at, "disagreement_table")
    assert set(dis[dis["other_rule"] == "nudenet_unlearndiffatk"]["generation_id"]) >= {
        "baseline.off.U4.0",
        "baseline.off.U4.1",
    }
    assert len(at.get("plotly_chart")) == 1


# -- hostile input ------------------------------------------------------------------------------------------
HOSTILE = {
    "run": "fixture-run-1' OR '1'='1",
    "rule": "nudenet_i2p; DROP TABLE labels; --",
    "concept": 'toy@1"); DELETE FROM runs; --',
    "thr": "0.6) OR (1=1",
    "set": "../../../../etc/passwd",
    "category": "<script>alert(1)</script>",
    "y": "__class__",
    "x": "fidelity_loss' --",
    "prompt": "pid-U1' UNION SELECT * FROM labels --",
    "seed": "100; DROP TABLE generations",
    "full": "1; rm -rf /",
    "quarantined": "' OR 1=1 --",
}


COMMON = ("run", "rule", "concept", "quarantined")
PAGE_PARAMS = {  # the parameters each page reads (the others are left alone, unread)
    "tradeoff": (*COMMON, "set", "category", "thr", "y", "x"),
    "categories": (*COMMON, "set", "category"),
    "suites": COMMON,
    "runs": COMMON,
    "review": (*COMMON, "set", "category", "prompt", "seed", "full"),
    "labels": COMMON,
}


@pytest.mark.parametrize("page", list(PAGE_PARAMS))
def test_hostile_query_params_are_rejected_harmlessly(page, dash_copy, use_warehouse, app_page):
    from pipelines.warehouse import snapshot_path

    use_warehouse(dash_copy)
    files = {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (dash_copy.path, snapshot_path(dash_copy.path))
    }
    at = app_page(page, **HOSTILE)
    assert not at.exception
    warning = [w.value for w in at.warning if "Ignored link parameters" in w.value]
    assert warning, texts(at)
    for name in PAGE_PARAMS[page]:
        assert name in warning[0]
    shown = "\n".join(texts(at))
    for value in HOSTILE.values():
        assert value not in shown  # never echoed back
    assert at.selectbox(key="w_run").value == RUN_4  # defaults instead
    assert at.selectbox(key="w_rule").value == "nudenet_i2p"
    assert at.checkbox(key="w_quarantined").value is False
    for k in PAGE_PARAMS[page]:
        assert at.query_params.get(k) != HOSTILE[k]  # the URL now holds the values in use
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == files  # nothing written
    assert not dash_copy.labels_dir.exists()


def test_valid_links_restore_a_shared_view(fixture_app):
    at = fixture_app("categories", run=RUN_2, rule="nudenet_classifier_p4d", set="unsafe_set")
    assert (at.selectbox(key="w_run").value, at.selectbox(key="w_rule").value) == (
        RUN_2,
        "nudenet_classifier_p4d",
    )
    assert not [w for w in at.warning if "Ignored" in w.value]
    at.switch_page("app_pages/tradeoff.py").run()  # filters follow the reviewer across pages
    assert at.selectbox(key="w_run").value == RUN_2 and at.query_params["run"] == RUN_2
