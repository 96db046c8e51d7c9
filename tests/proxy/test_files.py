"""Files of a proxy index: fetched on first request, streamed, verified, cached, shared."""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from collections.abc import Callable
from io import BytesIO

import httpx
import pytest

from tests.builders import Dist, make_wheel
from tests.proxy.conftest import MakeProxy, Proxy, Upstream
from tests.proxy.front import Fault, Front


def eventually(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """The blob is stored and linked just after the response ends: wait for it."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def metadata_of(wheel: Dist) -> bytes:
    with zipfile.ZipFile(BytesIO(wheel.data)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


def fetch_partial(proxy: Proxy, path: str) -> tuple[int, int | None, bytes, Exception | None]:
    """GET ``path`` as a stream: status, Content-Length, the bytes received, the error if any."""
    received = bytearray()
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{proxy.url}{path}") as response,
    ):
        length = response.headers.get("content-length")
        try:
            for chunk in response.iter_raw():
                received += chunk
        except httpx.HTTPError as exc:
            return response.status_code, int(length) if length else None, bytes(received), exc
        return response.status_code, int(length) if length else None, bytes(received), None


def test_files_are_streamed_on_first_request_then_served_from_the_tree(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    page = proxy.page("px-alpha")
    wheel10, sdist, wheel11 = upstream.corpus.alpha
    url = proxy.file_url(wheel11)
    assert not proxy.in_tree(url), "listed before it is fetched"
    listed = next(f for f in page["files"] if f["filename"] == wheel11.filename)

    first = proxy.get(url)
    assert first.status_code == 200
    assert first.content == wheel11.data
    assert first.headers["content-length"] == str(len(wheel11.data))
    assert first.headers["etag"] == f'"{wheel11.sha256}"'
    eventually(lambda: proxy.in_tree(url), "the file is linked into the tree")
    assert proxy.blob_stored(wheel11.sha256)
    again = proxy.get(url)
    assert again.content == wheel11.data
    assert len(front.requests(wheel11.filename)) == 1, "the second request came from the tree"

    # Core metadata (PEP 658), checked against the page's core-metadata hash.
    metadata = proxy.get(f"{url}.metadata")
    assert metadata.status_code == 200
    assert metadata.content == metadata_of(wheel11)
    assert hashlib.sha256(metadata.content).hexdigest() == listed["core-metadata"]["sha256"]
    eventually(lambda: proxy.in_tree(f"{url}.metadata"), "the metadata is linked into the tree")
    assert proxy.get(f"{url}.metadata").content == metadata.content
    assert len(front.requests(f"{wheel11.filename}.metadata")) == 1

    # A Range request on an uncached file: fetched whole, then answered from the tree.
    partial = proxy.get(proxy.file_url(sdist), headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206
    assert partial.content == sdist.data[10:20]
    assert proxy.in_tree(proxy.file_url(sdist))

    # HEAD on an uncached file answers from the page, without fetching.
    head = httpx.head(f"{proxy.url}{proxy.file_url(wheel10)}", timeout=30)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(wheel10.data))
    assert front.requests(wheel10.filename) == []
    assert len(front.requests()) == 4  # the page, the wheel, its metadata, the sdist

    # A path the proxy does not list is a plain 404, asked of nobody.
    unknown = proxy.get(f"/packages/00/00/{'0' * 60}/nothing-1.0.tar.gz")
    assert unknown.status_code == 404
    assert len(front.requests()) == 4


def test_a_corrupt_or_cut_file_is_aborted_and_never_cached(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    big = upstream.corpus.big
    url = proxy.file_url(big)
    proxy.page("px-big")

    front.faults[big.filename] = Fault("status", status=503)
    failed = proxy.get(url)
    assert failed.status_code == 502
    assert failed.text.startswith("Bad Gateway: the upstream could not be used")
    assert "HTTP 503" in failed.text

    for kind in ("corrupt", "truncate"):
        front.faults[big.filename] = Fault(kind, seconds=0.8)  # type: ignore[arg-type]
        status, length, received, error = fetch_partial(proxy, url)
        assert status == 200, kind
        assert length == len(big.data), kind
        assert isinstance(error, httpx.RemoteProtocolError), (kind, error)
        assert 0 < len(received) < len(big.data), (kind, len(received))
        assert received == big.data[: len(received)] or kind == "corrupt"
        time.sleep(0.3)
        assert not proxy.in_tree(url), kind
        assert not proxy.blob_stored(big.sha256), kind

    # Core metadata that does not match the page: an error, never cached.
    metadata_url = f"{url}.metadata"
    front.faults[f"{big.filename}.metadata"] = Fault("corrupt", seconds=0.2)
    status, _length, received, error = fetch_partial(proxy, metadata_url)
    assert status == 502 or isinstance(error, httpx.RemoteProtocolError), (status, error)
    assert received != metadata_of(big)
    assert not proxy.in_tree(metadata_url)

    # The upstream mended: the file is fetched again, whole and right.
    front.faults.clear()
    good = proxy.get(url)
    assert good.status_code == 200 and good.content == big.data
    assert proxy.get(metadata_url).content == metadata_of(big)
    eventually(lambda: proxy.in_tree(url), "the file is linked into the tree")
    assert len(front.requests(big.filename)) == 4


def test_concurrent_requests_for_one_file_share_one_upstream_fetch(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(front.url)
    bulk = upstream.corpus.bulk
    url = f"{proxy.url}{proxy.file_url(bulk)}"
    proxy.page("px-bulk")
    front.faults[bulk.filename] = Fault("slow", seconds=1.5)

    results: list[bytes | httpx.HTTPError] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def download() -> None:
        start.wait()
        try:
            response = httpx.get(url, timeout=60)
            response.raise_for_status()
            outcome: bytes | httpx.HTTPError = response.content
        except httpx.HTTPError as exc:  # reported by the assertion below
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=download) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 8
    assert all(r == bulk.data for r in results), [
        r if isinstance(r, httpx.HTTPError) else len(r) for r in results
    ]
    assert len(front.requests(bulk.filename)) == 1


def test_legacy_json_right_after_a_fetch_has_the_file_s_digests(
    upstream: Upstream, front: Front, make_proxy: MakeProxy
) -> None:
    """The render of a fetched file waits for the end of the burst; legacy JSON, which
    only the tree has, must not be answered from before it."""
    wheel = make_wheel("px-legacy-fresh", "1.0")  # its own file: no other test stored it
    upstream.upload(wheel)
    proxy = make_proxy(front.url)
    proxy.page("px-legacy-fresh")
    page = f"{proxy.index}/simple/px-legacy-fresh/index.html"
    eventually(lambda: proxy.in_tree(page), "the page is rendered: nothing of it is pending")
    assert proxy.get(proxy.file_url(wheel)).content == wheel.data
    legacy = proxy.get("/pypi/px-legacy-fresh/json")
    assert legacy.status_code == 200, legacy.text
    (entry,) = legacy.json()["releases"]["1.0"]
    assert entry["digests"] == {
        "sha256": wheel.sha256,
        "md5": hashlib.md5(wheel.data, usedforsecurity=False).hexdigest(),
        "blake2b_256": hashlib.blake2b(wheel.data, digest_size=32).hexdigest(),
    }
    assert entry["md5_digest"] == entry["digests"]["md5"]
