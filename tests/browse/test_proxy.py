"""A proxy index's project page: once a client fetched the project, the page says which
upstream it came from and when, and its files are "mirrored from" the upstream's host.
The upstream and the proxy are two live tilsit servers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.browse.conftest import assert_safe, wheel
from tests.conftest import LiveServer, create_database, start_server, stop
from tests.uploads import upload
from tilsit.config import load_settings
from tilsit.index.manage import create_index
from tilsit.instance import open_instance

# The proxy's upstream client honours *_PROXY variables: keep 127.0.0.1 direct.
_DIRECT = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def test_a_proxied_project_page_says_where_from_and_when(
    live_server: LiveServer, postgres_base: str | None, tmp_path: Path
) -> None:
    token = live_server.token("alice")
    with httpx.Client(base_url=live_server.url, timeout=60) as upstream:
        dist = wheel("far-away", "3.1", "Far *away*", "text/markdown")
        assert upload(upstream, dist, token).status_code == 200
    settings = load_settings(
        overrides={"data": tmp_path / "down", "database_url": create_database(postgres_base)},
        environ={},
    )
    instance = open_instance(settings)
    try:
        with instance.db.write() as session:
            options = {"upstream": f"{live_server.url}/simple/"}
            create_index(session, "px", "proxy", options=options)
        instance.renderer.catch_up()
    finally:
        instance.close()
    proxy = start_server(settings, tmp_path / "down.log", env=_DIRECT)
    try:
        _check(httpx.Client(base_url=proxy.url, timeout=60), live_server, dist.sha256)
    finally:
        stop(proxy)


def _check(client: httpx.Client, upstream: LiveServer, sha256: str) -> None:

    # Not asked for yet: no page (the browsing page does not reach out upstream).
    assert client.get("/px/project/far-away/").status_code == 404
    assert client.get("/px/simple/far-away/").status_code == 200  # a client asks: filled
    page = client.get("/px/project/far-away/")
    assert page.status_code == 200, page.text
    assert_safe(page)
    assert (
        f'This proxy index takes its projects from <span class="url-text">{upstream.url}/simple/</span>'
        in page.text
    )
    assert "This project was last fetched at" in page.text
    assert "mirrored from 127.0.0.1" in page.text
    assert sha256 in page.text
    client.close()
