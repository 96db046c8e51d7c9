"""The browsing pages in Chromium: home → index, every page fits a 375 px screen, contrast of
at least 7:1 in the light and the dark scheme, and audit action codes kept whole.

Screenshots of each page at 1,280 and 375 px go to test-artifacts/screenshots/ (tests.screenshots).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import MakeUser, login
from tests.builders import make_sdist, make_wheel
from tests.conftest import LiveServer
from tests.listing.conftest import add_projects
from tests.pagechecks import CONTRAST_JS
from tests.screenshots import SCREEN_WIDTHS, shoot
from tests.uploads import upload
from tilsit.db.engine import Database
from tilsit.index.manage import create_index
from tilsit.index.permissions import set_visibility

PASSWORD = "correct horse battery staple 42"

# The pages every width is checked on: (screenshot name, path).
PAGES = [
    ("home", "/"),
    ("index-main", "/main/"),
    ("index-main-updated", "/main/?sort=updated&page=2"),
    ("index-private", "/vault/"),
    ("index-mirror-stale", "/copy/"),
    ("account-overview", "/account/?welcome=1"),
    ("tokens", "/account/tokens"),
    ("admin-events", "/admin/events"),
]

# The innermost elements that reach past the right edge: what makes a page scroll sideways.
_WIDE_JS = """
(width) => Array.from(document.querySelectorAll('body *'))
  .filter((el) => el.getBoundingClientRect().right > width + 1 &&
                  !Array.from(el.children).some((c) => c.getBoundingClientRect().right > width + 1))
  .slice(0, 5).map((el) => el.tagName + '.' + el.className + ': ' + el.outerHTML.slice(0, 120))
"""

# Each kind of text the brief names, and where it is found.
TEXTS = {
    "body text": ("/main/", "main p, main dd"),
    "muted text": ("/vault/", ".hint"),
    "links": ("/", "main a"),
    "code": ("/vault/", "code"),
    "tags": ("/", ".tag"),
    "stale tag": ("/", ".tag-bad"),
    "messages": ("/account/?welcome=1", ".messages p"),
    "buttons": ("/", "main button"),
    "table headers": ("/", "th"),
    "navigation": ("/", ".top a, .top button"),
}


@pytest.fixture
def site(mail_server: LiveServer, make_user: MakeUser) -> Iterator[LiveServer]:
    """A server with projects on main (enough for two pages), a private index ``vault``
    and a mirror ``copy`` that never synced (stale), and the admin ``ada``."""
    make_user("ada", PASSWORD, admin=True)
    token = mail_server.token("ada")
    db = Database(mail_server.settings.db_url)
    try:
        with db.write() as session:
            vault = create_index(session, "vault", actor="test")
            set_visibility(session, vault, private=True, actor_name="test")
            create_index(
                session,
                "copy",
                "mirror",
                actor="test",
                options={"upstream": "https://user:hunter2@upstream.invalid/simple/"},
            )
        add_projects(db, "main", 120)
    finally:
        db.dispose()
    with httpx.Client(base_url=mail_server.url, timeout=60) as client:
        for dist in (
            make_wheel("Long-Project-Name-For-Narrow-Screens", "2026.12.3.post1"),
            make_sdist("Long-Project-Name-For-Narrow-Screens", "2026.12.3.post1"),
            make_wheel("browse-me", "1.0"),
        ):
            assert upload(client, dist, token).status_code == 200
        assert (
            upload(client, make_wheel("hidden", "1.0"), token, "/vault/legacy/").status_code == 200
        )
    yield mail_server


def _logged_in(page: Any, site: LiveServer) -> None:
    login(page, site.url, "ada", PASSWORD)
    assert page.get_by_role("button", name="Log out ada").is_visible()


def test_browse_home_to_index(site: LiveServer, page: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(site.url + "/")
    assert page.get_by_role("heading", name="tilsit package index").is_visible()
    assert page.get_by_role("link", name="vault").count() == 0  # private, and anonymous here
    search = page.get_by_label("Search projects")
    assert search.get_attribute("name") == "q"
    page.locator("table.indexes").get_by_role("link", name="main", exact=True).click()
    page.wait_for_load_state()
    assert page.url == site.url + "/main/"
    assert page.get_by_role("heading", name="Index main").is_visible()
    page.get_by_role("link", name="Next").click()
    page.wait_for_load_state()
    assert page.url.endswith("/main/?sort=name&page=2")
    page.get_by_role("link", name="last upload").click()
    page.wait_for_load_state()
    first = page.locator("table.projects tbody tr").first.locator("a")
    assert first.get_attribute("href") == "/main/project/browse-me/"  # uploaded last
    first.click()
    page.wait_for_load_state()
    assert page.url == site.url + "/main/project/browse-me/"
    # The search box sends q to /_/search.
    page.goto(site.url + "/")
    page.get_by_label("Search projects").fill("browse")
    page.get_by_label("Search projects").press("Enter")
    page.wait_for_load_state()
    assert page.url == site.url + "/_/search?q=browse"


def test_pages_fit_375_px_and_are_shot_at_both_widths(site: LiveServer, page: Any) -> None:
    _logged_in(page, site)
    overflowing = {}
    for width in SCREEN_WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in PAGES:
            response = page.goto(site.url + path)
            assert response is not None and response.status == 200, path
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if scroll > width:
                overflowing[(path, width)] = (scroll, page.evaluate(_WIDE_JS, width))
            shoot(page, name)
    assert overflowing == {}
    # The upstream's password never reaches a page.
    page.goto(site.url + "/copy/")
    assert "hunter2" not in page.content()
    assert "https://upstream.invalid/simple/" in page.content()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_at_least_7_to_1(site: LiveServer, page: Any, scheme: str) -> None:
    _logged_in(page, site)
    page.emulate_media(color_scheme=scheme)
    background = None
    too_low = []
    for kind, (path, selector) in TEXTS.items():
        page.goto(site.url + path)
        measured = page.evaluate(CONTRAST_JS, selector)
        assert measured, f"no {kind} ({selector}) on {path}"
        too_low += [(kind, m) for m in measured if m["ratio"] < 7]
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert too_low == []
    for name, path in (
        ("home", "/"),
        ("index-mirror-stale", "/copy/"),
        ("admin-events", "/admin/events"),
    ):
        page.goto(site.url + path)
        shoot(page, f"{name}-{scheme}")
    # The scheme really changed: a dark page in dark mode, a white one in light mode.
    assert background == ("rgb(18, 18, 18)" if scheme == "dark" else "rgb(255, 255, 255)")


def test_audit_action_codes_are_not_broken_mid_word(site: LiveServer, page: Any) -> None:
    _logged_in(page, site)
    for width in SCREEN_WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(site.url + "/admin/events")
        codes = page.locator("table.audit td code")
        assert codes.count() > 0
        shapes = page.evaluate(
            """() => Array.from(document.querySelectorAll('table.audit td code')).map((el) => ({
                text: el.textContent, lines: el.getClientRects().length,
                wordBreak: getComputedStyle(el).wordBreak,
                height: el.getBoundingClientRect().height,
                lineHeight: parseFloat(getComputedStyle(el).lineHeight) ||
                            parseFloat(getComputedStyle(el).fontSize) * 1.5}))"""
        )
        for shape in shapes:
            assert shape["wordBreak"] != "break-all", shape
            assert shape["lines"] == 1, (width, shape)
            assert shape["height"] <= shape["lineHeight"] * 1.3, (width, shape)
