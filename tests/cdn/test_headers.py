"""Surrogate-Key and Cache-Tag on every kind of read response, and the key grammar."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.render.purge import keys_of_row, paths_of_key
from tilsit.spec.surrogate import MAX_KEY, index_key, join_keys, list_key, project_key

_SAFE = re.compile(r"^[a-z0-9._:/-]+$")


def _keys(response: object) -> list[str]:
    headers = response.headers  # type: ignore[attr-defined]
    keys = headers["surrogate-key"].split(" ")
    assert headers["cache-tag"].split(",") == keys  # the same keys, Cloudflare's separator
    assert all(_SAFE.match(k) for k in keys)
    return keys


def test_every_read_route_names_its_index_and_project(client: AppClient, token: str) -> None:
    assert upload(client, make_wheel("Foo_Bar", "1.0"), token).status_code == 200
    doc = client.get("/simple/foo-bar/?format=json").json()
    file_path = urlsplit(doc["files"][0]["url"]).path
    assert file_path.startswith("/packages/")
    project = ["index:main", "project:main/foo-bar"]
    routes = {
        "/simple/": ["index:main", "list:main"],
        "/main/simple/": ["index:main", "list:main"],
        "/simple/foo-bar/": project,
        "/simple/foo-bar/?format=json": project,
        "/main/simple/foo-bar/": project,
        "/simple/Foo_Bar/": project,  # the redirect to the normalized name too
        "/simple/nothing-here/": ["index:main", "project:main/nothing-here"],  # a cached 404
        "/pypi/foo-bar/json": project,
        "/pypi/foo-bar/1.0/json": project,
        "/main/pypi/foo-bar/json": project,
        "/main/tuf/timestamp.json": ["index:main", "tuf:main"],
        "/main/tuf/root.json": ["index:main", "tuf:main"],
        file_path: ["index:packages"],
        file_path + ".metadata": ["index:packages"],
        "/main/": ["index:main"],
        "/project/foo-bar/": project,
        "/main/project/foo-bar/": project,
    }
    for path, expected in routes.items():
        for method in ("GET", "HEAD"):
            response = client.request(method, path)
            assert response.status_code in (200, 301, 308, 404), (path, response.status_code)
            assert _keys(response) == expected, (method, path)


def test_writes_and_operations_carry_no_keys(client: AppClient, token: str) -> None:
    response = upload(client, make_wheel("foo", "1.0"), token)
    assert response.status_code == 200
    assert "surrogate-key" not in response.headers
    for path in ("/_/health", "/osv/v1/vulns/GHSA-none", "/account/login"):
        assert "surrogate-key" not in client.get(path).headers, path


def test_what_a_change_purges() -> None:
    assert keys_of_row("main", "foo", "upload") == ["list:main", "project:main/foo", "tuf:main"]
    assert keys_of_row("main", "foo", "remove project") == ["index:main", "index:packages"]
    assert keys_of_row("team", None, "policy") == ["index:team"]
    paths = paths_of_key("project:main/foo", "main")
    assert paths[:2] == ["/main/simple/foo/", "/main/pypi/foo/json"]
    assert "/simple/foo/" in paths  # the default index's root paths too
    assert "/simple/foo/" not in paths_of_key("project:team/foo", "main")
    assert paths_of_key("index:team", "main") == ["/team/*"]


def test_key_grammar() -> None:
    assert index_key("main") == "index:main"
    assert list_key("team.a") == "list:team.a"
    assert project_key("main", "Foo__Bar.baz") == "project:main/foo-bar-baz"
    assert join_keys(["a", "b", "a"]) == "a b"
    long = project_key("main", "x" * 300)
    other = project_key("main", "x" * 299 + "y")
    assert len(long) == MAX_KEY and len(other) == MAX_KEY
    assert long != other  # the digest keeps long names apart
    assert _SAFE.match(long)


@pytest.mark.parametrize("name", ["a b", "ü", "x\r\ny", "a,b"])
def test_unsafe_characters_never_reach_a_key(name: str) -> None:
    assert _SAFE.match(project_key("main", name))
