"""A small HTTP server in front of an upstream index: counts requests and injects faults.

Tests point a proxy index at a :class:`Front` instead of the upstream itself, so
they can count exactly what the proxy asked for, and make the upstream corrupt,
truncate, slow, hang, fail or vanish. It listens on 127.0.0.1 only and forwards
to the upstream with the standard library's ``http.client``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import unquote, urlsplit

from tests.httpd import QuietHandler

__all__ = ["Fault", "Front", "Seen"]

_FORWARDED_REQUEST = ("accept", "if-none-match", "range")
_FORWARDED_RESPONSE = ("content-type", "etag", "x-pypi-last-serial", "location")

FaultKind = Literal["corrupt", "truncate", "slow", "hang", "status", "reset"]


@dataclass
class Fault:
    """What to do to responses whose path ends with ``suffix``.

    corrupt: flip one byte in the middle, same length; truncate: promise the
    whole length, send half and close; slow: send the body in pieces over
    ``seconds``; hang: wait ``seconds`` before answering; status: answer
    ``status``; reset: close the connection without answering.
    """

    kind: FaultKind
    seconds: float = 1.0
    status: int = 500


@dataclass(frozen=True)
class Seen:
    """One request the front received, and the status it answered."""

    method: str
    path: str  # percent-decoded, without the query
    status: int
    if_none_match: str | None


class Front:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "tests talk to 127.0.0.1 only"
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.faults: dict[str, Fault] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Front:
        front = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with front._lock:
                    front._connections.add(self.connection)

            def finish(self) -> None:
                with front._lock:
                    front._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                front._handle(self)

            def do_HEAD(self) -> None:
                front._handle(self)

        # The same port again after a stop, so a restarted front is the same upstream.
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections: from now on connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def requests(self, suffix: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.endswith(suffix)]

    def _record(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        path = unquote(handler.path.split("?", 1)[0])
        with self._lock:
            self.seen.append(
                Seen(handler.command, path, status, handler.headers.get("If-None-Match"))
            )

    def _fault(self, path: str) -> Fault | None:
        path = unquote(path.split("?", 1)[0])
        for suffix, fault in self.faults.items():
            if path.endswith(suffix):
                return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        fault = self._fault(handler.path)
        if fault is not None and fault.kind == "reset":
            self._record(handler, 0)
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self._record(handler, fault.status)
            body = f"injected HTTP {fault.status}\n".encode()
            handler.send_response(fault.status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            headers = {k: v for k in _FORWARDED_REQUEST if (v := handler.headers.get(k))}
            connection.request(handler.command, handler.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        self._record(handler, response.status)
        handler.send_response(response.status)
        for name in _FORWARDED_RESPONSE:
            value = response.getheader(name)
            if value is not None:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        if fault is not None and fault.kind == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        if fault is not None and fault.kind == "truncate":
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        if fault is not None and fault.kind in ("slow", "corrupt"):
            # In pieces, so the proxy is well into streaming when the end arrives.
            pieces = 8
            step = max(1, -(-len(body) // pieces))
            for start in range(0, len(body), step):
                handler.wfile.write(body[start : start + step])
                handler.wfile.flush()
                time.sleep(fault.seconds / pieces)
            return
        handler.wfile.write(body)
