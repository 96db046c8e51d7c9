"""A fault-injecting upstream: a threaded HTTP proxy in front of a real tilsit.

Faults are rules matched against the request path (a regex, ``re.search``),
each for a number of requests (or for ever) and switchable while the server
runs::

    corrupt         the body with one byte flipped (same length)
    truncate        half the body, then the connection closes; Content-Length says all
    short           half the body, no Content-Length (the body just ends early)
    status          an error status (500 unless told) with a short body
    delay           sleep ``delay`` seconds, then answer normally (client timeouts)
    stall           block until ``release`` is set (signalling ``hit`` first): a
                    deterministic moment to kill a client
    stale           a project page one serial older than it is (JSON, HTML and header)

``after=N`` lets the first N matching requests through. Every request path is
recorded in ``requests``.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tests.httpd import QuietHandler

_FORWARDED = ("accept", "if-none-match", "authorization")
_KEPT = ("content-type", "etag", "x-pypi-last-serial", "location", "cache-control")


@dataclass
class Rule:
    kind: str
    pattern: str
    times: int | None = 1  # None: every matching request
    after: int = 0  # let this many matching requests through first
    status: int = 500
    delay: float = 0.0
    hit: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    count: int = 0  # requests this rule has acted on
    seen: int = 0  # matching requests, acted on or not


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.requests: list[str] = []

    def add(self, kind: str, pattern: str, times: int | None = 1, **params: Any) -> Rule:
        rule = Rule(kind, pattern, times, **params)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            for rule in self.rules:
                rule.release.set()
            self.rules = []
            self.requests = []

    def take(self, path: str) -> Rule | None:
        with self._lock:
            self.requests.append(path)
            for rule in self.rules:
                if not re.search(rule.pattern, path):
                    continue
                rule.seen += 1
                if rule.seen > rule.after and (rule.times is None or rule.count < rule.times):
                    rule.count += 1
                    return rule
        return None


def _stale(body: bytes, headers: dict[str, str]) -> bytes:
    """The page one serial older than it says (the way a lagging CDN node serves it)."""
    serial = headers.get("x-pypi-last-serial")
    if serial is not None:
        headers["x-pypi-last-serial"] = str(int(serial) - 1)

    def older(match: re.Match[bytes]) -> bytes:
        return match[1] + str(int(match[2]) - 1).encode() + match[3]

    body = re.sub(rb'("_last-serial":)(\d+)(\})', older, body, count=1)
    return re.sub(rb"(<!--SERIAL )(\d+)(-->)", older, body)


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyServer

    def do_GET(self) -> None:
        rule = self.server.faults.take(self.path)
        kind = rule.kind if rule is not None else ""
        if rule is not None and kind == "status":
            self._send(rule.status, {"content-type": "text/plain"}, b"injected failure\n")
            return
        if rule is not None and kind == "stall":
            rule.hit.set()
            rule.release.wait(timeout=60)
        if rule is not None and kind == "delay":
            rule.release.wait(timeout=rule.delay)
        status, headers, body = self._forward()
        if kind == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        elif kind == "stale":
            body = _stale(body, headers)
        elif kind in ("truncate", "short"):
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if kind == "truncate":
                self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self._send(status, headers, body)

    def _forward(self) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.server.target + self.path)
        for name in _FORWARDED:
            value = self.headers.get(name)
            if value is not None:
                request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, raw, body = exc.code, exc.headers, exc.read()
        headers = {k.lower(): v for k, v in raw.items() if k.lower() in _KEPT}
        return status, headers, body

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class FaultyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target = target.rstrip("/")
        self.faults = Faults()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.faults.clear()
        self.shutdown()
        self.server_close()
