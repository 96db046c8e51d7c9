"""One base URL per tree: a command run without the server's base_url cannot change one project's URLs.

Before, each process rendered with the base_url of its own settings: a ``tilsit
yank`` run without the server's environment rewrote that project's page and
legacy JSON with root-relative URLs while every other page kept absolute ones,
and nothing said so. Now the tree's base URL is recorded by its owners (serve,
init, rebuild); other commands render with it and say so, and a server started
with a new base_url renders every page again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli, start_server, stop
from tests.uploads import upload
from tilsit.config import Settings

JSON = "application/vnd.pypi.simple.v1+json"
PUBLIC = "https://pypi.example.test"
MOVED = "https://packages.example.test"


def _urls(server: LiveServer, project: str) -> list[str]:
    page = httpx.get(f"{server.url}/simple/{project}/", headers={"Accept": JSON}, timeout=30)
    assert page.status_code == 200, page.text
    legacy = httpx.get(f"{server.url}/pypi/{project}/json", timeout=30).json()
    return [f["url"] for f in page.json()["files"]] + [f["url"] for f in legacy["urls"]]


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(settings, tmp_path / "server.log", env={"TILSIT_BASE_URL": PUBLIC})
    token = live.token("alice")
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for name in ("acme-one", "acme-two"):
            done = upload(http, make_wheel(name, "1.0"), token)
            assert done.status_code == 200, done.text
    yield live
    stop(live)


def test_a_command_without_base_url_renders_with_the_trees(
    server: LiveServer, settings: Settings
) -> None:
    assert all(url.startswith(f"{PUBLIC}/packages/") for url in _urls(server, "acme-one"))
    # The operator's shell lacks TILSIT_BASE_URL (the fixture's settings have none).
    yanked = run_cli(settings, "yank", "acme-one", "1.0", "--reason", "broken")
    assert "the tree's base_url 'https://pypi.example.test'" in yanked.stderr
    assert "tilsit rebuild" in yanked.stderr
    urls = _urls(server, "acme-one")
    assert urls and all(url.startswith(f"{PUBLIC}/packages/") for url in urls), urls


def test_serve_with_a_new_base_url_renders_every_page_again(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    stop(server)
    moved = start_server(settings, tmp_path / "moved.log", env={"TILSIT_BASE_URL": MOVED})
    try:
        for project in ("acme-one", "acme-two"):  # neither touched since the move
            urls = _urls(moved, project)
            assert urls and all(url.startswith(f"{MOVED}/packages/") for url in urls), urls
        assert "rendering every page again" in (tmp_path / "moved.log").read_text()
    finally:
        stop(moved)


def test_rebuild_makes_its_base_url_the_trees(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    stop(server)
    # No base_url at all: the operator wants root-relative URLs from now on.
    run_cli(settings, "rebuild")
    later = run_cli(settings, "yank", "acme-two", "1.0")
    assert "base_url" not in later.stderr  # the command now agrees with the tree
    plain = start_server(settings, tmp_path / "plain.log")
    try:
        for project in ("acme-one", "acme-two"):
            urls = _urls(plain, project)
            assert urls and all(url.startswith("/packages/") for url in urls), urls
    finally:
        stop(plain)
