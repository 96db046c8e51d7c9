"""A real HTTP server on 127.0.0.1 that records the purge requests it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.httpd import QuietHandler


@dataclass(frozen=True)
class Purge:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def keys(self) -> set[str]:
        return set(self.headers.get("surrogate-key", "").split())


@dataclass
class PurgeSink:
    url: str
    received: list[Purge] = field(default_factory=list)
    status: int = 200  # what it answers (503: a failing CDN)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def purged_keys(self) -> set[str]:
        with self.lock:
            return set().union(*(p.keys for p in self.received if p.keys))

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"no purge {what} within {timeout} s; received {self.received}")


@contextmanager
def purge_sink() -> Iterator[PurgeSink]:
    sink = PurgeSink("")

    class Handler(QuietHandler):
        def _any(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with sink.lock:
                sink.received.append(Purge(self.command, self.path, headers))
                status = sink.status
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        do_POST = do_PURGE = do_GET = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
