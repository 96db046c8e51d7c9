"""Search in Chromium: a typo typed into the search form finds the project, and the result
leads to its page; the results page fits a 375 px screen."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.screenshots import SCREEN_WIDTHS, shoot
from tests.search.conftest import wheel
from tests.uploads import upload


def test_a_typo_in_the_search_form_finds_the_project(live_server: LiveServer, page: Any) -> None:
    token = live_server.token("ana")
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        for dist in (
            wheel("requests", "2.32.3", "HTTP for Humans.", "http client"),
            wheel("requests-toolbelt", "1.0.0", "A utility belt for advanced users of requests."),
            wheel("flask", "3.0", "A micro web framework."),
        ):
            assert upload(client, dist, token).status_code == 200

    page.goto(f"{live_server.url}/_/search")
    page.get_by_label("Search projects by name, summary, keywords or README").fill("reqests")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert "q=reqests" in page.url
    results = page.locator("ol.search-results > li")
    assert results.count() >= 1
    assert results.first.locator("h2 a").inner_text() == "requests"
    for width in SCREEN_WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        shoot(page, "search-results")
        if width == 375:
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the results page scrolls sideways by {overflow} px at 375 px"
    page.get_by_role("link", name="requests", exact=True).click()
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}/main/project/requests/"
