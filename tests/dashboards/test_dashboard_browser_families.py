"""The trade-off page's model-family filter in a real browser (`safeaudit dashboard`, Debian chromium).

The fixture warehouse's run 1 with a second model of family 'sdxl' whose images are all safe (see
test_dashboard_families.py): choosing the family in the sidebar switches the page between the two.
"""

from __future__ import annotations

import pytest

from tests.dashboards.test_dashboard_browser import _settle, browser_page, chromium, server  # noqa: F401
from tests.dashboards.test_dashboard_families import two_family_warehouse  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture()
def family_server(two_family_warehouse, server):  # noqa: F811 - the warehouse is changed before the server starts
    return server


def _metrics(page) -> list[str]:
    return page.locator('[data-testid="stMetricValue"]').all_inner_texts()


def test_family_filter_in_a_real_browser(family_server, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"{family_server}/?run=fixture-run-1&rule=nudenet_i2p")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Model family")
    assert box.is_visible() and "family=sd&" in page.url + "&"  # the default (first) family, in the link
    assert _metrics(page)[0] == "0.500"  # SD: the fixture's baseline

    box.click()
    page.get_by_role("option", name="sdxl", exact=True).click()
    _settle(page)
    assert _metrics(page)[0] == "0.000"  # SDXL: every image safe
    assert "family=sdxl" in page.url
    assert page.get_by_text("builtin:tiny-sdxl").first.is_visible()

    page.goto(f"{family_server}/?run=fixture-run-1&rule=nudenet_i2p&family=sd")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    assert _metrics(page)[0] == "0.500"
