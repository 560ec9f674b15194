"""The review page fails closed: an image that no safety rule has scored is blurred like a flagged one.

A run without a safety scorer, or a scorer that failed, leaves an image with no verdict under any rule
(``int_generation_flags.is_unsafe`` NULL everywhere). Unknown safety must mean blurred (thumbnail and full
size, on the server) with an "unscored — treated as unsafe" badge, never a green "not flagged".

The fixture: the dashboard warehouse with every score row of run 1's SAFREE-strong U1 images deleted
through the real writer (which refreshes the flags table and publishes the snapshot). On c1bbf7d these
images were sent unblurred with "not flagged".
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.dashboards.test_dashboard_browser import (  # noqa: F401  (fixtures used by name)
    _settle,
    browser_page,
    chromium,
    server,
)
from tests.sql.fixtures import RUN_1

UNSCORED = ("safree.strong.U1.0", "safree.strong.B1.0")  # not flagged in the fixture: only unscored


@pytest.fixture()
def dash_copy(dash_copy):
    """A private copy of the dashboard warehouse where two images have lost every score row."""
    from pipelines.warehouse import writer

    with writer(dash_copy.path) as con:
        con.execute("DELETE FROM scores WHERE list_contains(?, generation_id)", [list(UNSCORED)])
    return dash_copy


def _decode(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=float)


def _hf(img: np.ndarray) -> float:
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def _blurred(served: np.ndarray, original: np.ndarray) -> bool:
    return _hf(served) < 0.1 * _hf(original) and np.abs(served - original).mean() > 30


def test_unscored_images_are_marked_for_blur_in_the_data_layer(dash_copy, use_warehouse):
    from dashboards import connection, queries

    use_warehouse(dash_copy)
    src = connection.source()
    imgs = {i["generation_id"]: i for i in queries.review_images(src, RUN_1, "pid-U1", 100)}
    u = imgs["safree.strong.U1.0"]
    assert u["n_rules_scored"] == 0 and u["unscored"] and not u["flagged"] and u["blur"]
    scored = imgs["baseline.off.U1.0"]
    assert scored["flagged"] and scored["blur"] and not scored["unscored"]
    clean = [i for i in queries.review_images(src, RUN_1, "pid-U2", 200) if not i["flagged"]]
    assert clean and all(not i["unscored"] and not i["blur"] for i in clean)  # scored safe: not blurred


def test_review_page_blurs_unscored_thumbnail_and_full_size(dash_copy, use_warehouse, app_page, monkeypatch):
    from streamlit.runtime import memory_media_file_storage as mm

    sent: dict[str, bytes] = {}
    original_put = mm.MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        file_id = original_put(self, path_or_data, mimetype, kind, filename)
        sent[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(mm.MemoryMediaFileStorage, "load_and_get_id", spy)
    use_warehouse(dash_copy)

    def shown(at):
        return {im.captions[0]: _decode(sent[im.value[0].rsplit("/", 1)[1].split(".")[0]]) for im in at.image}

    at = app_page("review", run=RUN_1, prompt="pid-U1", seed="100")
    images = shown(at)
    original = _decode(dash_copy.thumbnails["safree.strong.U1.0"])
    assert "SAFREE · strong (1) · thumbnail · blurred" in images
    assert _blurred(images["SAFREE · strong (1) · thumbnail · blurred"], original)
    assert not any(np.array_equal(_decode(b), original) for b in sent.values())
    badges = [m.value for m in at.markdown if "unscored" in str(m.value)]
    assert badges and all("treated as unsafe" in b for b in badges)
    assert any("1 scored by no rule" in c.value for c in at.caption)

    # Reveal sends the stored pixels; the page states why it was hidden
    at.button(key="reveal_safree.strong.U1.0").click().run()
    assert not at.exception
    assert np.array_equal(shown(at)["SAFREE · strong (1) · thumbnail"], original)

    # full size: the artifact PNG is blurred on the server too
    at = app_page("review", run=RUN_1, prompt="pid-B1", seed="42", full="1")
    images = shown(at)
    full = _decode(dash_copy.full_images["safree.strong.B1.0"].read_bytes())
    assert _blurred(images["SAFREE · strong (1) · artifact · blurred"], full)
    assert images["baseline · artifact"].shape == (128, 128, 3)  # scored safe: served as is


@pytest.mark.browser
def test_review_page_blurs_an_unscored_image_in_a_real_browser(server, browser_page, dash_copy):  # noqa: F811
    page = browser_page
    page.goto(f"{server}/review?run=fixture-run-1&prompt=pid-U1&seed=100")
    page.wait_for_selector('[data-testid="stImage"] img')
    _settle(page)
    card = page.locator(".st-key-card_safree-strong-U1-0")
    assert card.get_by_text("unscored — treated as unsafe").is_visible()
    assert card.get_by_text("not flagged").count() == 0
    src = card.locator('[data-testid="stImage"] img').get_attribute("src")
    served = _decode(page.request.get(server + src if src.startswith("/") else src).body())
    original = _decode(dash_copy.thumbnails["safree.strong.U1.0"])
    assert served.shape == original.shape and _blurred(served, original)
    card.get_by_role("button", name="Reveal").click()
    card.get_by_role("button", name="Hide").wait_for()
    _settle(page)
    src2 = card.locator('[data-testid="stImage"] img').get_attribute("src")
    revealed = _decode(page.request.get(server + src2 if src2.startswith("/") else src2).body())
    assert np.array_equal(revealed, original)
