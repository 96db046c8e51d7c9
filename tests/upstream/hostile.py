"""A hostile upstream: a small threaded HTTP server that answers what a test tells it.

Each route is a path mapped to an :class:`Answer`: a status, headers and a body
that is bytes or an iterator of chunks (sent chunked, so it may never end).
Helpers build what an attacker would serve: a PEP 691 project page listing any
hashes, a redirect, an endless body, a gzip bomb produced by a streaming
compressor (so the test's own memory stays small). Every request is recorded
with its headers, so a test sees what reached the attacker (credentials
included). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import json
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tests.httpd import QuietHandler

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # Bytes, or a function making the chunks afresh for each request.
    body: bytes | Callable[[], Iterable[bytes]] = b""


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


def page(name: str, files: list[dict[str, Any]], serial: int = 1) -> Answer:
    """A PEP 691 project page of ``name`` listing ``files`` (filename, url, hashes, size...)."""
    document = {
        "meta": {"api-version": "1.1", "_last-serial": serial},
        "name": name,
        "files": files,
        "versions": [],
    }
    headers = {"content-type": JSON, "x-pypi-last-serial": str(serial)}
    return Answer(200, headers, json.dumps(document).encode())


def root(*names: str, serial: int = 1) -> Answer:
    document = {
        "meta": {"api-version": "1.1", "_last-serial": serial},
        "projects": [{"name": n, "_last-serial": serial} for n in names],
    }
    headers = {"content-type": JSON, "x-pypi-last-serial": str(serial)}
    return Answer(200, headers, json.dumps(document).encode())


def redirect(location: str, status: int = 303) -> Answer:
    return Answer(status, {"location": location})


def endless(chunk: bytes = b"A" * 65536, content_type: str = JSON) -> Answer:
    """A chunked body that never ends."""
    return Answer(200, {"content-type": content_type}, lambda: itertools.repeat(chunk))


def gzip_bomb(total: int, content_type: str = JSON) -> Answer:
    """``Content-Encoding: gzip`` of ``total`` zero bytes, compressed while sent."""

    def chunks() -> Iterator[bytes]:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 20)
        for _ in range(total >> 20):
            out = compressor.compress(block)
            if out:
                yield out
        yield compressor.flush()

    headers = {"content-type": content_type, "content-encoding": "gzip"}
    return Answer(200, headers, chunks)


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def do_GET(self) -> None:
        self.server.record(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        answer = self.server.routes.get(self.path.split("?", 1)[0], Answer(404, {}, b"no\n"))
        try:
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            if isinstance(answer.body, bytes):
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in answer.body():
                if self.server.stopping.is_set():
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what a capped client does
        self.close_connection = True


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def asked(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
