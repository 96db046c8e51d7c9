"""Item 6 of issue 14: hostile text through every field that reaches a page.

Every browsing page is fetched as a browser would and parsed for script the page
did not ship (tests.xss.htmlcheck), its CSP checked, and the hostile field shown to
have reached the page as text; then Chromium opens each one and no dialog may open.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.browser.conftest import create_account, login
from tests.xss import corpus
from tests.xss.conftest import HOSTED, MIRRORED, Published
from tests.xss.htmlcheck import script_findings
from tilsit.web.ui.context import CSP

PASSWORD = "correct horse battery staple 42"
HTML = {"accept": "text/html,application/xhtml+xml"}


def _pages() -> list[tuple[str, int]]:
    pages = [("/", 200), ("/main/", 200), ("/mirror/", 200)]
    for name, _type, _readme in HOSTED:
        pages += [(f"/main/project/{name}/", 200), (f"/main/project/{name}/1.0/", 200)]
    pages += [(f"/mirror/project/{MIRRORED}/", 200), (f"/mirror/project/{MIRRORED}/1.0/", 200)]
    pages += [
        ("/_/search?q=xss", 200),
        ("/_/search?q=" + quote(corpus.SCRIPT), 200),  # the query is shown back
        ("/main/project/" + quote(corpus.SCRIPT, safe="") + "/", 404),  # and so is the name
        ("/main/project/xss-md/" + quote(corpus.IMG, safe="") + "/", 404),
    ]
    return pages


PAGES = _pages()


def test_the_checker_finds_every_payload_unescaped_and_none_escaped() -> None:
    # The check must be able to fail: the raw corpus is full of findings.
    for text in (corpus.MARKDOWN, corpus.RST, corpus.PLAIN, corpus.SUMMARY, corpus.YANK_REASON):
        assert script_findings(text), text
        assert script_findings(escape(text)) == []
    raw = script_findings(corpus.MARKDOWN)
    for tell in ("xss-img", "xss-svg", "xss-a", "xss-entity", "xss-tab", "xss-case", "iframe"):
        assert any(tell in finding for finding in raw), (tell, raw)


@pytest.mark.parametrize(("path", "status"), PAGES)
def test_no_script_survives(published: Published, path: str, status: int) -> None:
    response = httpx.get(published.url + path, headers=HTML, timeout=30)
    assert response.status_code == status, (path, response.text[:500])
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith("text/html")
    assert script_findings(response.text) == [], path


@pytest.mark.parametrize(("name", "content_type", "readme"), HOSTED)
def test_hostile_fields_reach_the_page_as_text(
    published: Published, name: str, content_type: str | None, readme: str
) -> None:
    page = httpx.get(f"{published.url}/main/project/{name}/", headers=HTML, timeout=30).text
    # The fields are shown (as text), so the check above did look at them.
    for tell in ("xss-summary", "xss-kw", "xss-doc", "Private ::"):
        assert tell in page, (name, tell)
    # The README rendered (its heading), or shown as text (plain).
    assert ("Hostile README" in page) or ("&lt;script&gt;alert(" in page), name


def test_the_yank_reasons_are_shown_as_text(published: Published) -> None:
    hosted = httpx.get(f"{published.url}/main/project/xss-md/", headers=HTML, timeout=30).text
    mirrored = httpx.get(
        f"{published.url}/mirror/project/{MIRRORED}/1.0/", headers=HTML, timeout=30
    ).text
    for page in (hosted, mirrored):
        assert "xss-yank" in page
        assert script_findings(page) == []


def test_stats_and_search_answer_json_not_html(published: Published) -> None:
    for path in ("/_/stats/main/xss-md/recent", "/_/search?q=xss&format=json"):
        response = httpx.get(published.url + path, timeout=30)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-content-type-options"] == "nosniff"


def test_chromium_opens_no_dialog_on_any_page(published: Published, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path, _status in PAGES:
        page.goto(published.url + path)
        page.wait_for_load_state("load")
    # The owner's management page shows the same fields.
    create_account(published.settings, "alice", PASSWORD)
    login(page, published.url, "alice", PASSWORD)
    for name, _type, _readme in HOSTED:
        page.goto(f"{published.url}/project/main/{name}/")
        page.wait_for_load_state("load")
        page.goto(f"{published.url}/main/project/{name}/")
        page.wait_for_load_state("load")
    assert dialogs == []
