"""The printed nginx configuration names the same CDN keys as tilsit, on what it serves
from the tree (a real nginx from `tilsit nginx-config`, as tests/readpath does)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import start_server, stop, stop_process
from tests.readpath.conftest import need_nginx, start_nginx
from tests.uploads import upload
from tilsit.config import Settings


@pytest.mark.nginx
def test_nginx_sends_the_keys_tilsit_sends(settings: Settings, tmp_path: Path) -> None:
    need_nginx()
    server = start_server(settings, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url) as http:
            assert upload(http, make_wheel("foo-bar", "1.0"), server.token()).status_code == 200
            url = http.get("/simple/foo-bar/?format=json").json()["files"][0]["url"]
        file_path = urlsplit(url).path
        process, nginx_url = start_nginx(settings.tree_dir, server.url, tmp_path / "nginx")
        try:
            routes = [
                "/simple/",
                "/main/simple/",
                "/simple/foo-bar/",
                "/simple/foo-bar/?format=json",
                "/main/simple/foo-bar/",
                "/pypi/foo-bar/json",
                "/main/pypi/foo-bar/1.0/json",
                "/main/tuf/timestamp.json",
                "/main/tuf/1.root.json",
                file_path,
                file_path + ".metadata",
            ]
            with (
                httpx.Client(base_url=nginx_url) as front,
                httpx.Client(base_url=server.url) as origin,
            ):
                for path in routes:
                    ours, theirs = origin.get(path), front.get(path)
                    assert ours.status_code == theirs.status_code == 200, path
                    assert "surrogate-key" in theirs.headers, path
                    assert theirs.headers["surrogate-key"] == ours.headers["surrogate-key"], path
                    assert theirs.headers["cache-tag"] == ours.headers["cache-tag"], path
                    # Served by nginx from the tree, not proxied: one copy of each header.
                    assert len(theirs.headers.get_list("surrogate-key")) == 1, path
        finally:
            stop_process(process)
    finally:
        stop(server)
