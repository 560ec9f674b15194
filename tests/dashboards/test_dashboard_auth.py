"""Behind the authenticating front, labels carry the name the front vouches for (issue 15 item 13).

The front (Caddy basic auth in docker-compose.yml) sets ``X-Forwarded-User``; the dashboard, started with
``SAFEAUDIT_REVIEWER_HEADER=X-Forwarded-User``, takes the reviewer from that header only: no typed name,
and no label at all from a request without it. The browser test sends the header as the front would
(Playwright's extra HTTP headers reach the page and its websocket); on c1bbf7d the header was ignored and
any typed name was stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from dashboards.auth import authenticated_reviewer
from tests.dashboards.test_dashboard_browser import (  # noqa: F401  (fixtures used by name)
    CHROMIUM_FLAGS,
    TIMEOUT_MS,
    _free_port,
    _safeaudit,
    _settle,
    chromium,
)


def test_authenticated_reviewer_reads_only_a_plain_name():
    assert authenticated_reviewer({"x-forwarded-user": "alice"}, "X-Forwarded-User") == "alice"
    assert authenticated_reviewer({"X-Forwarded-User": " bob@lab "}, "X-Forwarded-User") == "bob@lab"
    assert authenticated_reviewer({}, "X-Forwarded-User") is None
    assert authenticated_reviewer({"X-Forwarded-User": ""}, "X-Forwarded-User") is None
    assert authenticated_reviewer({"X-Forwarded-User": "a b<script>"}, "X-Forwarded-User") is None
    assert authenticated_reviewer({"X-Other": "mallory"}, "X-Forwarded-User") is None


@pytest.fixture()
def front_server(dash_copy, tmp_path):
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    cmd = [
        *_safeaudit(),
        "dashboard",
        "--warehouse",
        str(dash_copy.path),
        "--artifacts",
        str(dash_copy.artifacts),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEAUDIT_")}
    env["SAFEAUDIT_REVIEWER_HEADER"] = "X-Forwarded-User"
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dashboard did not become healthy in 90 s"
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _page(pw, browser_path, profile, headers):
    context = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=browser_path,
        headless=True,
        args=CHROMIUM_FLAGS,
        viewport={"width": 1440, "height": 1000},
        extra_http_headers=headers,
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context, context.pages[0] if context.pages else context.new_page()


@pytest.mark.browser
def test_labels_carry_the_authenticated_name(front_server, chromium, dash_copy, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    url = f"{front_server}/review?run=fixture-run-1&prompt=pid-U1&seed=100"
    with sync_playwright() as pw:
        context, page = _page(pw, chromium, tmp_path / "p1", {"X-Forwarded-User": "alice"})
        try:
            page.goto(url)
            page.wait_for_selector('[data-testid="stImage"] img')
            _settle(page)
            assert page.get_by_text("(signed in)").is_visible()
            assert page.locator('input[aria-label="Reviewer"]').count() == 0  # no name to type
            sld = page.locator(".st-key-card_sld-weak-U1-0")
            sld.locator('[data-testid="stRadio"]').get_by_text("unsafe", exact=True).click()
            _settle(page)
            sld.get_by_role("button", name="Save label").click()
            page.get_by_text("Saved label unsafe").wait_for()
        finally:
            context.close()

        context, page = _page(pw, chromium, tmp_path / "p2", {})  # past the front without its header
        try:
            page.goto(url)
            page.wait_for_selector('[data-testid="stImage"] img')
            _settle(page)
            assert page.get_by_text("labels cannot be saved").is_visible()
            sld = page.locator(".st-key-card_sld-weak-U1-0")
            sld.locator('[data-testid="stRadio"]').get_by_text("safe", exact=True).click()
            _settle(page)
            sld.get_by_role("button", name="Save label").click()
            page.get_by_text("no authenticated reviewer").wait_for()
        finally:
            context.close()
    saved = [json.loads(p.read_text()) for p in sorted(dash_copy.labels_dir.glob("*.json"))]
    assert [(s["generation_id"], s["label"], s["reviewer"]) for s in saved] == [
        ("sld.weak.U1.0", "unsafe", "alice")
    ]
