"""A proxy's TTL is its pages' Cache-Control; `index set` and `index delete` reach the
running server: a new upstream is used at the next fetch, a new TTL within seconds, and a
deleted proxy answers 404."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tests.builders import make_wheel
from tests.conftest import run_cli, stop_process
from tests.proxy.conftest import MakeProxy, Proxy, Upstream
from tests.readpath.conftest import need_nginx, start_nginx
from tilsit.spec.simple import JSON


def _cache_control(proxy: Proxy, base: str, path: str) -> str:
    answer = httpx.get(f"{base}{path}", headers={"Accept": JSON}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["cache-control"]


def test_proxy_pages_are_cached_for_its_ttl_by_tilsit_and_nginx(
    make_proxy: MakeProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = make_proxy(upstream.url, ttl=123)
    pages = [
        f"/{proxy.index}/simple/px-alpha/",
        f"/{proxy.index}/pypi/px-alpha/json",
        f"/{proxy.index}/simple/",
    ]
    for path in pages:
        assert _cache_control(proxy, proxy.url, path) == "max-age=123, public", path
    # A hosted index keeps the server's page_max_age.
    assert _cache_control(proxy, proxy.url, "/main/simple/") == "max-age=600, public"
    need_nginx()
    process, url = start_nginx(
        proxy.settings.tree_dir,
        urlsplit(proxy.url).netloc,
        tmp_path / "nginx",
        proxy_indexes=(proxy.index,),
    )
    try:
        for path in pages:
            assert _cache_control(proxy, url, path) == "max-age=123, public", path
        assert _cache_control(proxy, url, "/main/simple/") == "max-age=600, public"
    finally:
        stop_process(process)


def test_index_set_reaches_the_running_proxy(make_proxy: MakeProxy, upstream: Upstream) -> None:
    # An upstream nobody listens on: nothing cached, so 502.
    proxy = make_proxy("http://127.0.0.1:9", ttl=300)
    assert proxy.get("/simple/px-alpha/").status_code == 502
    run_cli(proxy.settings, "index", "set", proxy.index, "--upstream", f"{upstream.url}/simple/")
    # The next fetch asks the new upstream: no restart, no wait.
    page = proxy.get("/simple/px-alpha/")
    assert page.status_code == 200, page.text
    assert {f["filename"] for f in page.json()["files"]}
    run_cli(proxy.settings, "index", "set", proxy.index, "--ttl", "77")
    deadline = time.monotonic() + 20
    seen = ""
    while time.monotonic() < deadline:
        seen = proxy.get("/simple/px-alpha/").headers["cache-control"]
        if seen == "max-age=77, public":
            break
        time.sleep(0.25)
    assert seen == "max-age=77, public"


def test_deleted_proxy_answers_404(make_proxy: MakeProxy, upstream: Upstream) -> None:
    # A file of its own: the package's proxies share one tree, and others list theirs.
    upstream.upload(make_wheel("px-deleted", "1.0"))
    proxy = make_proxy(upstream.url)
    page = proxy.get("/simple/px-deleted/")
    assert page.status_code == 200
    unfetched = urljoin(f"{proxy.url}/", page.json()["files"][0]["url"])
    run_cli(proxy.settings, "index", "delete", proxy.index, "--yes")
    for path in ("/simple/px-deleted/", "/simple/", "/pypi/px-deleted/json", "/simple/px-alpha/"):
        answer = proxy.get(path)
        assert answer.status_code == 404, (path, answer.text)
    # A file it listed but never fetched is not fetched for it any more.
    assert httpx.get(unfetched, timeout=30).status_code == 404
