"""Issue 17 on the dashboard (AppTest, real DuckDB): the trade-off table shows each point's acted share, and
the negation-sets page lists a recorded set with the run that used it and sends its images blurred only."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.dashboards.test_dashboard_app import POINTS, decode, hf, shown_images, table
from tests.dashboards.test_dashboard_app import sent_media as sent_media
from tests.sql.fixtures import KNOWN, RUN_1


def test_tradeoff_table_shows_the_acted_share(dash_warehouse, use_warehouse, app_page):
    use_warehouse(dash_warehouse)
    at = app_page("tradeoff", run=RUN_1, rule="nudenet_i2p")
    df = table(at, "tradeoff_table").set_index("point")
    for point, label in POINTS.items():
        assert df.loc[label, "acted_rate"] == pytest.approx(KNOWN["acted_rate"][(RUN_1, point)]), point


@pytest.mark.slow
def test_negation_sets_page_lists_sets_and_runs_and_blurs_members(
    dash_copy,
    use_warehouse,
    app_page,
    tmp_path,
    sent_media,
):
    from pipelines.negation_sets import record_set
    from pipelines.warehouse import writer

    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    checker = (np.indices((64, 64)).sum(0) // 4 % 2 * 255).astype("uint8")
    original = np.stack([checker, checker * 0, checker * 0], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(original).save(buf, format="PNG")
    (folder / "images" / "00000.png").write_bytes(buf.getvalue())
    manifest = {
        "set_hash": "abcdef0123456789",
        "name": "fixture_set",
        "kind": "import",
        "model_id": "builtin:tiny",
        "vae_sha": "v",
        "height": 64,
        "width": 64,
        "vae_latent": "mean",
        "n_candidates": 1,
        "n_members": 1,
        "path": str(folder),
        "rule": None,
        "members": [
            {
                "member": 0,
                "kept": True,
                "image_file": "images/00000.png",
                "image_sha256": "x",
                "source_file": "mine.png",
            }
        ],
    }
    record_set(dash_copy.path, manifest)
    with writer(dash_copy.path) as con:  # one run "used" it: a Safe Denoiser-like row points at the hash
        con.execute(
            "UPDATE generations SET negation_set = ? WHERE run_id = ? AND method = 'sld' AND level = 'weak'",
            [manifest["set_hash"], RUN_1],
        )
    use_warehouse(dash_copy)
    at = app_page("negation_sets")
    sets = next(d.value for d in at.dataframe if "n_members" in d.value.columns)
    assert sets[["name", "set_hash", "run_id", "n_generations"]].values.tolist() == [
        ["fixture_set", "abcdef0123456789", RUN_1, 20]
    ]
    shown = shown_images(at, sent_media)
    assert list(shown) == ["mine.png · blurred"]
    blurred = shown["mine.png · blurred"]
    assert hf(blurred) < 0.1 * hf(original.astype(float))
    assert not any(np.array_equal(decode(b), original.astype(float)) for b in sent_media.values())
    assert json.loads(json.dumps(manifest))  # the manifest is plain JSON
