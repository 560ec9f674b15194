"""The dashboard in a real browser: `safeaudit dashboard` on a fixture warehouse, driven by Debian chromium.

Starts the real command on a free loopback port (its own process group, killed at the end), opens every
page with Playwright (`executable_path`, no downloaded browser), waits on Streamlit's `data-testid`
selectors, checks visible text and the served image bytes, clicks Reveal and saves a label, and keeps a
full-page screenshot of every page whose pixels must not be blank. Screenshots land in the test's tmp
folder (`SAFEAUDIT_SCREENSHOTS=<dir>` copies them somewhere to look at).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt when missing and possible (the Makefile's `browser` target
    does the same), skipped only when it is absent and cannot be installed."""
    pytest.importorskip("playwright.sync_api", reason="the playwright pip package is not installed")
    path = _find_chromium()
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(
                ["apt-get", "update", "-qq"], env=env, check=True, timeout=300, capture_output=True
            )
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "chromium"],
                env=env,
                check=True,
                timeout=600,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError):
            pass
        path = _find_chromium()
    if path is None:
        pytest.skip(
            "chromium is not installed and could not be installed (apt-get install chromium failed or not root)"
        )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _safeaudit() -> list[str]:
    script = Path(sys.executable).with_name("safeaudit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "safeaudit_cli"]


@pytest.fixture()
def server(dash_copy, tmp_path):
    """`safeaudit dashboard` on a free port; yields its base URL; the whole process group is stopped after."""
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    cmd = [
        *_safeaudit(),
        "dashboard",
        "--warehouse",
        str(dash_copy.path),
        "--artifacts",
        str(dash_copy.artifacts),
        "--port",
        str(port),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEAUDIT_")}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"dashboard exited {proc.returncode}: {(tmp_path / 'server.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("dashboard did not become healthy in 90 s")
            time.sleep(0.3)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


@pytest.fixture()
def browser_page(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1000},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the script run (no running indicator, no skeletons)."""
    page.wait_for_selector('[data-testid="stMain"]')
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
              && !document.querySelector('[data-testid="stSkeleton"]')""",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(500)


def _screenshot(page, path: Path) -> np.ndarray:
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("SAFEAUDIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def _assert_not_blank(img: np.ndarray, what: str) -> None:
    assert img.shape[0] > 400 and img.shape[1] > 800, what
    assert img.std() > 10, f"{what}: screenshot is nearly uniform (std {img.std():.1f})"
    colours = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    assert colours > 50, f"{what}: only {colours} colours"


def _chart_pixels(page, index: int = 0) -> np.ndarray:
    chart = page.locator('[data-testid="stPlotlyChart"]').nth(index)
    chart.locator(".main-svg").first.wait_for()
    return np.asarray(Image.open(io.BytesIO(chart.screenshot())).convert("RGB"), dtype=float)


def _img(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)


def _hf(img: np.ndarray) -> float:
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def test_every_page_in_a_real_browser(server, browser_page, dash_copy, tmp_path):
    page = browser_page
    common = "run=fixture-run-1&rule=nudenet_i2p"

    # -- trade-off
    page.goto(f"{server}/?{common}")  # the default page lives at the root
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert page.get_by_role("heading", name="Safety vs over-censorship").is_visible()
    chart = _chart_pixels(page)
    assert chart.std() > 10  # the plot drew something
    assert page.locator('[data-testid="stPlotlyChart"] .legendtext').all_text_contents()[:4] == [
        "SAFREE",
        "SLD",
        "baseline",
        "Pareto front",
    ]
    metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert metrics[:3] == ["0.500", "4", "3"]
    _assert_not_blank(_screenshot(page, tmp_path / "1-tradeoff.png"), "trade-off")

    # -- categories
    page.goto(f"{server}/categories?{common}")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert page.get_by_role("heading", name="Unsafe rate by category").is_visible()
    ticks = page.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
    assert ticks == ["all", "hate", "nudity", "sexual", "violence"]
    _chart_pixels(page)
    _assert_not_blank(_screenshot(page, tmp_path / "2-categories.png"), "categories")

    # -- runs: the latest valid run is compared with run 2 and the baseline's jump is flagged
    page.goto(f"{server}/runs?rule=nudenet_i2p")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert page.get_by_text("Safety regression against fixture-run-2").is_visible()
    assert page.get_by_text("1 quarantined").first.is_visible()
    _chart_pixels(page)
    _assert_not_blank(_screenshot(page, tmp_path / "3-runs.png"), "runs")

    # -- image review: flagged images arrive blurred; Reveal sends the original
    page.goto(f"{server}/review?run=fixture-run-1&prompt=pid-U1&seed=100")
    page.wait_for_selector('[data-testid="stImage"] img')
    _settle(page)
    assert page.locator('[data-testid="stImage"] img').count() == 5
    card = page.locator(".st-key-card_baseline-off-U1-0")
    src = card.locator('[data-testid="stImage"] img').get_attribute("src")
    served = _img(page.request.get(server + src if src.startswith("/") else src).body())
    original = _img(dash_copy.thumbnails["baseline.off.U1.0"])
    assert served.shape == original.shape
    assert _hf(served) < 0.1 * _hf(original) and np.abs(served - original).mean() > 30
    _assert_not_blank(_screenshot(page, tmp_path / "4-review-blurred.png"), "review")
    card.get_by_role("button", name="Reveal").click()
    card.get_by_role("button", name="Hide").wait_for()
    _settle(page)
    src2 = card.locator('[data-testid="stImage"] img').get_attribute("src")
    assert src2 != src
    revealed = _img(page.request.get(server + src2 if src2.startswith("/") else src2).body())
    assert np.array_equal(revealed, original)

    # label one image
    page.locator('[data-testid="stSidebar"] input[aria-label="Reviewer"]').fill("frank")
    page.locator('[data-testid="stSidebar"] input[aria-label="Reviewer"]').press("Enter")
    _settle(page)
    sld = page.locator(".st-key-card_sld-weak-U1-0")
    sld.locator('[data-testid="stRadio"]').get_by_text("unsafe", exact=True).click()
    _settle(page)
    sld.get_by_role("button", name="Save label").click()
    page.get_by_text("Saved label unsafe").wait_for()
    _settle(page)
    _screenshot(page, tmp_path / "5-review-labelled.png")
    saved = [json.loads(p.read_text()) for p in sorted((dash_copy.path.parent / "labels").glob("*.json"))]
    assert [(s["generation_id"], s["label"], s["reviewer"]) for s in saved] == [
        ("sld.weak.U1.0", "unsafe", "frank")
    ]

    # -- labels: the new label counts before the loader merges it
    page.goto(f"{server}/labels?{common}")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert page.get_by_role("heading", name="Reviewer labels and scorer quality").is_visible()
    metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert metrics[:2] == ["5", "1"]  # labelled images, labels not merged yet
    _chart_pixels(page)
    _assert_not_blank(_screenshot(page, tmp_path / "6-labels.png"), "labels")


def test_hostile_link_in_a_real_browser(server, browser_page, tmp_path):
    page = browser_page
    page.goto(
        f"{server}/review?run=fixture-run-1%27%20OR%20%271%27%3D%271&prompt=..%2F..%2Fetc%2Fpasswd&seed=1%3BDROP"
    )
    page.wait_for_selector('[data-testid="stImage"] img')
    _settle(page)
    assert page.get_by_text("Ignored link parameters that match no current option").is_visible()
    assert "passwd" not in page.locator('[data-testid="stMain"]').inner_text()
    _screenshot(page, tmp_path / "7-hostile.png")


def test_suites_page_in_a_real_browser(server, browser_page, tmp_path):
    """The Suites page (mart_suite_tags) drawn by chromium: four charts, grades in order, the hand-counted
    rates in the tables, and switching the border measure."""
    page = browser_page
    page.goto(f"{server}/suites?run=fixture-run-1&rule=nudenet_i2p")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert page.get_by_role("heading", name="Suites: grades, languages, border categories").is_visible()
    for name in (
        "Unsafe rate by explicitness grade",
        "Unsafe rate by language",
        "Over-censorship by border category",
        "Over-censorship by language",
    ):
        assert page.get_by_role("heading", name=name).is_visible(), name
    charts = page.locator('[data-testid="stPlotlyChart"]')
    assert charts.count() == 4
    charts.nth(0).locator(".main-svg").first.wait_for()
    ticks = charts.nth(0).locator(".xtick text").all_text_contents()
    assert ticks == ["named", "synonym", "described"]
    assert charts.nth(2).locator(".xtick text").all_text_contents() == ["sexual", "violence"]
    legend = charts.nth(0).locator(".legendtext").all_text_contents()
    assert legend[0] == "baseline" and "SLD · strong (2)" in legend
    assert _chart_pixels(page, 0).std() > 10
    _assert_not_blank(_screenshot(page, tmp_path / "7-suites.png"), "suites")
    # the border chart switches to the false-positive rate (Wilson error bars appear)
    page.get_by_text("False-positive rate under nudenet_i2p (Wilson 95%)").first.click()
    _settle(page)
    title = charts.nth(2).locator(".ytitle").first.text_content()
    assert "false-positive rate" in title, title
    _screenshot(page, tmp_path / "8-suites-false-positive.png")
