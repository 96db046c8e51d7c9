"""The upstream HTTP client against a small local server: headers, statuses, errors."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
import trustme

import tilsit.upstream.batch
import tilsit.upstream.client
import tilsit.upstream.download
import tilsit.upstream.errors
import tilsit.upstream.filters
import tilsit.upstream.mirror_trust
import tilsit.upstream.pages
import tilsit.upstream.report
import tilsit.upstream.sync
from tests import postgres
from tests.httpd import QuietHandler
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from tilsit.upstream.pages import ACCEPT

T = TypeVar("T")
FILE = bytes(range(256)) * 40


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path
        if path == "/simple/page/":
            if self.headers.get("if-none-match") == '"v1"':
                self._send(304, b"", etag='"v1"')
                return
            echo = {k.lower(): v for k, v in self.headers.items()}
            self._send(200, json.dumps(echo).encode(), etag='"v1"', serial="5")
        elif path == "/simple/moved":
            self._send(301, b"", location="/simple/page/")
        elif path in ("/missing", "/gone", "/broken", "/busy", "/forbidden"):
            status = {"/missing": 404, "/gone": 410, "/broken": 500, "/busy": 429}.get(path, 403)
            self._send(status, b"no\n")
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late")
        elif path == "/file":
            self._send(200, FILE)
        elif path == "/truncated":
            self.send_response(200)
            self.send_header("content-length", str(len(FILE)))
            self.end_headers()
            self.wfile.write(FILE[:100])
            self.close_connection = True
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/vnd.pypi.simple.v1+json")
            for key, value in headers.items():
                self.send_header(key.replace("serial", "x-pypi-last-serial"), value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """Two servers: two origins."""
    started = [ThreadingHTTPServer(("127.0.0.1", 0), _Handler) for _ in range(2)]
    for server in started:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in started)  # type: ignore[misc]
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The same server over TLS, and the PEM of the CA that signed its certificate."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    pem = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(pem)
    server.shutdown()
    server.server_close()


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def _client(base: str, **kwargs: Any) -> UpstreamClient:
    return UpstreamClient(f"{base}/simple", **kwargs)


def test_fetch_page_negotiates_and_revalidates(servers: tuple[str, str]) -> None:
    base = servers[0]

    async def go() -> None:
        async with _client(base) as client:
            assert client.url("") == f"{base}/simple/"
            page = await client.fetch_page(client.url("page/"))
            sent = json.loads(page.body)
            assert sent["accept"] == ACCEPT
            assert "if-none-match" not in sent
            assert (page.status, page.etag, page.serial) == (200, '"v1"', 5)
            assert page.content_type == "application/vnd.pypi.simple.v1+json"
            again = await client.fetch_page(client.url("page/"), etag='"v1"')
            assert (again.status, again.body, again.etag) == (304, b"", '"v1"')
            moved = await client.fetch_page(client.url("moved"))
            assert moved.url == f"{base}/simple/page/"
            assert client.requests == 4  # the redirect counts

    run(go)


@pytest.mark.parametrize(
    ("path", "error", "status"),
    [
        ("/missing", UpstreamNotFound, 404),
        ("/gone", UpstreamNotFound, 410),
        ("/broken", UpstreamUnavailable, 500),
        ("/busy", UpstreamUnavailable, 429),
        ("/forbidden", UpstreamProtocolError, 403),
    ],
)
def test_statuses_become_upstream_errors(
    servers: tuple[str, str], path: str, error: type[UpstreamError], status: int
) -> None:
    async def go() -> None:
        async with _client(servers[0]) as client:
            with pytest.raises(error) as caught:
                await client.fetch_page(f"{servers[0]}{path}")
            assert caught.value.status == status
            with pytest.raises(error):
                async with client.stream_file(f"{servers[0]}{path}", limit=1 << 20):
                    pass

    run(go)


def test_network_failures_are_unavailable(servers: tuple[str, str]) -> None:
    closed = f"http://127.0.0.1:{postgres.free_port()}"

    async def go() -> None:
        async with _client(servers[0], timeout=0.3) as client:
            with pytest.raises(UpstreamUnavailable, match="timed out"):
                await client.fetch_page(f"{servers[0]}/slow")
            with pytest.raises(UpstreamUnavailable):
                await client.fetch_page(f"{closed}/simple/")

    run(go)


def test_stream_file_and_truncation(servers: tuple[str, str]) -> None:
    async def go() -> None:
        async with _client(servers[0]) as client:
            async with client.stream_file(f"{servers[0]}/file", limit=len(FILE)) as stream:
                assert stream.content_length == len(FILE)
                data = b"".join([chunk async for chunk in stream])
            assert data == FILE
            with pytest.raises(UpstreamUnavailable):
                async with client.stream_file(f"{servers[0]}/truncated", limit=len(FILE)) as stream:
                    async for _chunk in stream:
                        pass

    run(go)


def test_over_tls_pages_files_and_failures(tls_server: tuple[str, str]) -> None:
    url, ca_pem = tls_server

    async def go() -> None:
        async with _client(url, ca_bundle=ca_pem, timeout=0.3) as client:
            page = await client.fetch_page(f"{url}/simple/page/")
            assert page.status == 200 and page.serial == 5
            again = await client.fetch_page(f"{url}/simple/page/", page.etag)
            assert again.status == 304
            async with client.stream_file(f"{url}/file", limit=len(FILE)) as stream:
                assert b"".join([chunk async for chunk in stream]) == FILE
            with pytest.raises(UpstreamUnavailable):
                async with client.stream_file(f"{url}/truncated", limit=len(FILE)) as stream:
                    async for _chunk in stream:
                        pass
            with pytest.raises(UpstreamUnavailable, match="timed out"):
                await client.fetch_page(f"{url}/slow")
            # The connections left are still good for more.
            assert (await client.fetch_page(f"{url}/simple/page/")).status == 200
        # A certificate no trusted CA signed is refused before any request is sent.
        async with _client(url, timeout=2) as client:
            with pytest.raises(UpstreamUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await client.fetch_page(f"{url}/simple/page/")

    run(go)


def test_credentials_go_only_to_the_upstream_origin(servers: tuple[str, str]) -> None:
    mine, other = servers

    async def go() -> None:
        async with _client(mine, auth=("alice", "s3cret")) as client:
            here = json.loads((await client.fetch_page(f"{mine}/simple/page/")).body)
            there = json.loads((await client.fetch_page(f"{other}/simple/page/")).body)
        assert here["authorization"].startswith("Basic ")
        assert "authorization" not in there

    run(go)


def test_from_options_with_a_ca_bundle(tmp_path: Any) -> None:
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    options = {
        "upstream": "https://127.0.0.1:1/simple/",
        "auth": {"username": "u", "password": "p"},
        "ca_bundle": str(pem),
        "timeout": 2,
    }

    async def go() -> None:
        async with UpstreamClient.from_options(options, connections=3) as client:
            assert client.base_url == options["upstream"]
            with pytest.raises(UpstreamUnavailable):
                await client.fetch_page(client.url(""))

    run(go)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (tilsit.upstream.client, ["FetchedPage", "FileStream", "UpstreamClient"]),
        (
            tilsit.upstream.errors,
            [
                "InvalidUpstreamPage",
                "RedirectRefused",
                "UpstreamError",
                "UpstreamNotFound",
                "UpstreamProtocolError",
                "UpstreamTooLarge",
                "UpstreamUnavailable",
            ],
        ),
        (
            tilsit.upstream.filters,
            ["FILTER_SETTINGS", "Filtered", "Filters", "InvalidFilter", "parse_size"],
        ),
        (
            tilsit.upstream.pages,
            [
                "ACCEPT",
                "JSON_TYPE",
                "UNKNOWN_SIZE",
                "InvalidUpstreamPage",
                "ParsedProject",
                "RootIndex",
                "SkippedFile",
                "SkippedProject",
                "is_json",
                "parse_project_page",
                "parse_root_page",
            ],
        ),
        (tilsit.upstream.batch, ["BATCH_LINGER", "BATCH_PROJECTS", "ApplyBatches", "Fetched"]),
        (tilsit.upstream.download, ["HANDOFF", "FileFetcher", "VerificationFailed"]),
        (tilsit.upstream.mirror_trust, ["NO_METADATA", "carry_here", "publish_trust"]),
        (tilsit.upstream.report, ["FAILURES_KEPT", "Reporter", "Silent", "SyncReport"]),
        (
            tilsit.upstream.sync,
            [
                "MirrorSync",
                "NotAMirror",
                "Reporter",
                "StalePage",
                "SyncBusy",
                "SyncReport",
                "VerificationFailed",
                "sync_mirror",
            ],
        ),
    ],
)
def test_public_surface(module: Any, names: list[str]) -> None:
    assert module.__all__ == names
    for name in names:
        assert hasattr(module, name)
