"""The project page's kept part: rendered once per state of the project, again after an
upload or a yank; and the release history paged, newest first (in-process app)."""

from __future__ import annotations

import re

from tests.browse.conftest import wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.index.manage import get_index, set_yanked
from tilsit.instance import Instance
from tilsit.web.ui import readme
from tilsit.web.ui.browse_project import PAGE_SIZE


def _post(client: AppClient, token: str, version: str) -> None:
    dist = wheel("cached", version, f"Release {version} notes", "text/plain")
    assert upload(client, dist, token).status_code == 200


def test_an_unchanged_project_is_not_rendered_again_and_a_change_is(
    client: AppClient, token: str, instance: Instance
) -> None:
    _post(client, token, "1.0")
    before = readme.renders()
    first = client.get("/main/project/cached/")
    assert first.status_code == 200 and "Release 1.0 notes" in first.text
    assert readme.renders() == before + 1
    for _ in range(3):
        again = client.get("/main/project/cached/")
        assert again.text == first.text
    assert readme.renders() == before + 1  # kept: no README rendered again

    _post(client, token, "1.1")  # a new serial: the page is rendered anew
    after = client.get("/main/project/cached/")
    assert "Release 1.1 notes" in after.text and "Release 1.0 notes" not in after.text
    assert readme.renders() == before + 2

    with instance.db.write() as session:
        set_yanked(
            session, get_index(session, "main"), "cached", "1.1", yanked=True, reason="bad build"
        )
    yanked = client.get("/main/project/cached/")
    assert "Yanked: bad build" in yanked.text and "Release 1.0 notes" in yanked.text


def test_the_history_of_many_versions_is_paged_newest_first(client: AppClient, token: str) -> None:
    count = PAGE_SIZE + 7
    for minor in range(count):
        assert upload(client, wheel("many", f"1.{minor}"), token).status_code == 200
    first = client.get("/main/project/many/")
    versions = re.findall(r'<a href="/main/project/many/([^/]+)/">', first.text)
    assert versions == [f"1.{minor}" for minor in range(count - 1, 6, -1)]
    assert f"{count} releases, newest first; page 1 of 2" in first.text
    assert 'href="/main/project/many/?page=2" rel="next"' in first.text
    second = client.get("/main/project/many/?page=2")
    rest = re.findall(r'<a href="/main/project/many/([^/]+)/">', second.text)
    assert rest == [f"1.{minor}" for minor in range(6, -1, -1)]
    assert client.get("/main/project/many/?page=3").status_code == 404
