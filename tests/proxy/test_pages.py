"""Project pages of a proxy index: on demand, TTL and ETag, 404s, a failing upstream."""

from __future__ import annotations

import time

from tests.builders import make_wheel
from tests.proxy.conftest import MakeProxy, Upstream
from tests.proxy.front import Fault, Front

ALPHA = "/simple/px-alpha/"


def test_page_fetched_on_first_request_then_served_from_the_tree(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    root = proxy.get("/simple/").json()
    assert root["projects"] == []

    page = proxy.page("px-alpha")
    expected = {d.filename: d.sha256 for d in upstream.corpus.alpha}
    assert {f["filename"]: f["hashes"]["sha256"] for f in page["files"]} == expected
    for f in page["files"]:
        dist = upstream.corpus.by_name(f["filename"])
        assert f["url"].endswith(proxy.file_url(dist)), "files are served by the proxy"
        assert f["size"] == len(dist.data)
    wheels = [f for f in page["files"] if f["filename"].endswith(".whl")]
    assert all(f["core-metadata"] for f in wheels), "PEP 658 metadata is passed on"
    assert [(s.path, s.status) for s in front.requests()] == [(ALPHA, 200)]

    # Within the TTL: from the tree, HTML too, without asking the upstream again.
    assert proxy.page("px-alpha") == page
    html = proxy.get("/simple/px-alpha/", headers={"Accept": "text/html"})
    assert html.status_code == 200 and "px_alpha-1.1-py3-none-any.whl" in html.text
    assert "warning" not in html.headers
    assert len(front.requests()) == 1
    assert [p["name"] for p in proxy.get("/simple/").json()["projects"]] == ["px-alpha"]

    # Non-normalized names redirect first, as on any index.
    moved = proxy.get("/simple/PX_Alpha/", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == f"/{proxy.index}/simple/px-alpha/"
    assert len(front.requests()) == 1


def test_after_the_ttl_a_page_is_revalidated_with_its_etag(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url, ttl=1)
    changing = "px-changing"
    upstream.upload(make_wheel(changing, "1.0"))
    first = proxy.page(changing)
    assert [s.status for s in front.requests(f"/simple/{changing}/")] == [200]

    time.sleep(1.2)
    assert proxy.page(changing) == first
    seen = front.requests(f"/simple/{changing}/")
    assert [s.status for s in seen] == [200, 304]
    assert seen[1].if_none_match, "the stored ETag is sent"
    assert proxy.page(changing) == first  # 304 made it fresh again: no request
    assert len(front.requests(f"/simple/{changing}/")) == 2

    newer = make_wheel(changing, "2.0")
    upstream.upload(newer)
    time.sleep(1.2)
    page = proxy.page(changing)
    assert newer.filename in {f["filename"] for f in page["files"]}
    assert page["versions"] == ["1.0", "2.0"]
    assert [s.status for s in front.requests(f"/simple/{changing}/")] == [200, 304, 200]


def test_upstream_404_is_remembered_briefly(front: Front, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(front.url, not_found_ttl=1)
    for _ in range(5):
        response = proxy.get("/simple/px-nowhere/")
        assert response.status_code == 404
        assert "px-nowhere" in response.text
    assert len(front.requests("/simple/px-nowhere/")) == 1
    time.sleep(1.2)
    assert proxy.get("/simple/px-nowhere/").status_code == 404
    assert len(front.requests("/simple/px-nowhere/")) == 2
    # Not a project name at all: never asked upstream.
    assert proxy.get("/simple/-bad-/", follow_redirects=True).status_code == 404
    assert len(front.requests()) == 2


def test_upstream_down_serves_cached_pages_as_stale_and_502_otherwise(
    front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url, ttl=1)
    cached = proxy.get("/simple/px-alpha/")
    assert cached.status_code == 200
    front.stop()
    time.sleep(1.2)

    stale = proxy.get("/simple/px-alpha/")
    assert stale.status_code == 200
    assert stale.content == cached.content
    assert stale.headers["warning"] == '110 - "Response is Stale"'
    assert stale.headers["x-tilsit-stale"] == "upstream unreachable"
    assert stale.headers["cache-control"] == "no-cache"

    missing = proxy.get("/simple/pip-dep/")
    assert missing.status_code == 502
    assert missing.text.startswith("Bad Gateway: the upstream could not be used")
    assert "'pip-dep'" in missing.text

    # Back up: revalidated (after the short back-off), no longer stale.
    front.start()
    time.sleep(1.2)
    fresh = proxy.get("/simple/px-alpha/")
    assert fresh.status_code == 200 and "warning" not in fresh.headers
    assert proxy.get("/simple/pip-dep/").status_code == 200


def test_upstream_timeout_gives_504_or_a_stale_page(front: Front, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(front.url, ttl=1, timeout=0.5)
    assert proxy.get("/simple/px-alpha/").status_code == 200
    front.faults["/simple/px-alpha/"] = Fault("hang", seconds=2)
    front.faults["/simple/pip-top/"] = Fault("hang", seconds=2)
    time.sleep(1.2)

    stale = proxy.get("/simple/px-alpha/")
    assert stale.status_code == 200
    assert stale.headers["x-tilsit-stale"] == "upstream timed out"
    timeout = proxy.get("/simple/pip-top/")
    assert timeout.status_code == 504
    assert timeout.text.startswith("Gateway Timeout: the upstream did not answer in time")


def test_upstream_5xx_is_502_for_an_uncached_page(front: Front, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(front.url)
    front.faults["/simple/pip-top/"] = Fault("status", status=503)
    response = proxy.get("/simple/pip-top/")
    assert response.status_code == 502
    assert "HTTP 503" in response.text
    del front.faults["/simple/pip-top/"]
    assert proxy.get("/simple/pip-top/").status_code == 200, "failures are not remembered"


def test_legacy_json_of_a_proxy_index_is_fetched_too(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    response = proxy.get("/pypi/px-alpha/json")
    assert response.status_code == 200
    assert set(response.json()["releases"]) == {"1.0", "1.1"}
    assert len(front.requests(ALPHA)) == 1
