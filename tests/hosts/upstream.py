"""A local upstream for several hosts: a static tree that counts requests and can be slow.

It serves :class:`tests.upstream.static.StaticTree` pages and files, counts every request
by path, and holds the requests for chosen paths (exact) for ``delay`` seconds while counting
how many of them were in flight at once: what two hosts racing for one job or one file
would show.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.httpd import QuietHandler
from tests.upstream.static import StaticTree

__all__ = ["CountingUpstream"]


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: CountingUpstream

    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        slow = path in self.server.slow
        with self.server.lock:
            self.server.counts[path] += 1
            if slow:
                self.server.in_flight += 1
                self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            if slow:
                time.sleep(self.server.delay)
            target = (self.server.tree.root / path.lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(self.server.tree.root.resolve()) or not target.is_file():
                self._send(404, b"not found\n")
                return
            kind = "text/html" if target.name.endswith(".html") else "application/octet-stream"
            self._send(200, target.read_bytes(), kind)
        finally:
            if slow:
                with self.server.lock:
                    self.server.in_flight -= 1

    def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CountingUpstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, *, slow: tuple[str, ...] = (), delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tree = StaticTree(root)
        self.slow = slow
        self.delay = delay
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A host killed mid-request (tests/hosts/test_crash.py) drops its connection:
        # expected there, and no failure of the upstream's.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
