"""``/<index>/``: what an index holds, its projects paged and sorted, and its install hint."""

from __future__ import annotations

import re

import pytest

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient
from tests.listing.conftest import add_projects
from tests.uploads import upload
from tilsit.index.manage import create_index
from tilsit.index.virtual import set_members
from tilsit.instance import Instance

_ROW = re.compile(r'<tr>\s*<td><a href="/(?P<index>[^/]+)/project/(?P<name>[^/]+)/">')


def listed(html: str) -> list[str]:
    return [m["name"] for m in _ROW.finditer(html)]


def test_index_page_shows_what_the_index_holds(client: AppClient, token: str) -> None:
    for dist in (
        make_wheel("Alpha-Tool", "1.0"),
        make_sdist("Alpha-Tool", "1.0"),
        make_wheel("Alpha-Tool", "2.0"),
        make_wheel("Alpha-Tool", "3.0rc1"),
        make_wheel("beta", "0.1"),
    ):
        assert upload(client, dist, token).status_code == 200
    page = client.get("/main/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    html = page.text
    assert "<h1>Index main" in html
    assert "<dt>Kind</dt><dd>hosted</dd>" in html
    assert "<dt>Access</dt><dd>public</dd>" in html
    assert "<dt>Projects</dt><dd>2</dd>" in html
    assert "<dt>Releases</dt><dd>4</dd>" in html
    assert "<dt>Files</dt><dd>5</dd>" in html
    assert listed(html) == ["alpha-tool", "beta"]
    # The latest final release, not the pre-release uploaded after it.
    assert re.search(r"alpha-tool/\">[^<]+</a></td>\s*<td>2.0</td>", html)
    assert '<a href="/main/simple/">/main/simple/</a>' in html
    assert "pip install --index-url http://testserver/main/simple/ NAME" in html
    # The last upload first: beta went up last.
    assert listed(client.get("/main/?sort=updated").text) == ["beta", "alpha-tool"]


def test_index_page_pages_and_sorts_many_projects(client: AppClient, instance: Instance) -> None:
    add_projects(instance.db, "main", 250)
    first = client.get("/main/").text
    assert "<dt>Projects</dt><dd>250</dd>" in first
    assert listed(first) == [f"proj-{n:04d}" for n in range(100)]
    assert "Page 1 of 3" in first and 'href="?sort=name&amp;page=2" rel="next"' in first
    third = client.get("/main/?sort=name&page=3").text
    assert listed(third) == [f"proj-{n:04d}" for n in range(200, 250)]
    assert 'rel="next"' not in third and 'href="?sort=name&amp;page=2" rel="prev"' in third
    updated = client.get("/main/?sort=updated&page=2").text
    assert listed(updated) == [f"proj-{n:04d}" for n in range(149, 49, -1)]
    assert "2026-01-01 02:29" in updated  # proj-0149's wheel: T0 + 149 min
    beyond = client.get("/main/?page=9")
    assert beyond.status_code == 200 and "There is no page 9" in beyond.text


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sort=size", "Unknown sort &#39;size&#39;: use sort=name or sort=updated."),
        ("page=0", "Invalid page &#39;0&#39;"),
        ("page=-1", "Invalid page &#39;-1&#39;"),
        ("page=two", "Invalid page &#39;two&#39;"),
        ("sort=updated&page=101", "Sorting by last upload goes 100 pages deep"),
    ],
)
def test_index_page_refuses_bad_choices(client: AppClient, query: str, reason: str) -> None:
    response = client.get(f"/main/?{query}")
    assert response.status_code == 400
    assert reason in response.text


def test_unknown_index_and_the_slash(client: AppClient) -> None:
    assert client.get("/main").status_code == 301
    assert client.get("/main").headers["location"] == "/main/"
    for path in ("/nothing/", "/nothing"):
        response = client.get(path)
        assert response.status_code == 404
        assert "There is no index named &#39;nothing&#39;." in response.text


def test_virtual_index_page_names_its_members(
    client: AppClient, instance: Instance, token: str
) -> None:
    assert upload(client, make_wheel("gamma", "1.0"), token).status_code == 200
    with instance.db.write() as db:
        set_members(db, create_index(db, "all", "virtual", actor="test"), ["main"], actor="test")
    instance.renderer.catch_up()
    html = client.get("/all/").text
    assert "<dt>Kind</dt><dd>virtual</dd>" in html
    assert '<li><a href="/main/">main</a></li>' in html
    assert "<dt>Releases</dt>" not in html
    assert re.search(r'gamma/">gamma</a></td>\s*<td><a href="/main/">main</a>', html)
