"""The HTTP protocol ``tilsit serve`` runs: uvicorn's, with the bounds it lacks.

Each open connection holds a file descriptor. uvicorn closes idle keep-alive
connections (``timeout_keep_alive``) and answers 503 past ``limit_concurrency``
once a request's headers are in, but a client that trickles its headers, one
byte now and then, is neither idle nor a request: 900 such connections used up
the descriptors, and every normal request then failed with a 500 (the tree and
the database could not be opened). This protocol adds, per connection:

- a header deadline: the request line and headers must arrive within
  ``header_timeout`` seconds of the first byte (or of the connection), else
  408 and close;
- a header size cap (httptools has none): past ``header_max_bytes``, 431 and close;
- a connection cap: a connection beyond ``max_connections`` gets 503 at once
  and is closed, so descriptors stay for the files and the database.

Request bodies have their own deadlines, at the ASGI level (:mod:`tilsit.web.bodies`).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tilsit.config import Settings

__all__ = ["ConnectionLimits", "GuardedHttpProtocol", "protocol_for", "server_options"]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    header_max_bytes: int = 64 * 1024


def _answer(status: bytes, reason: str) -> bytes:
    body = f"{reason}\n".encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`ConnectionLimits`."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(b"503 Service Unavailable", "Service Unavailable: too many connections")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header_timer is None and self.cycle is not None and self.cycle.response_complete:
            self._arm()  # the next request on a kept-alive connection
        super().data_received(data)
        if self._header_timer is not None and not self._refused:
            # Still in the headers after this chunk: all of it was header bytes.
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.header_max_bytes:
                self._refuse(
                    b"431 Request Header Fields Too Large",
                    f"Request Header Fields Too Large: at most {self.limits.header_max_bytes} bytes",
                )

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is under way: its body has its own deadline
        self._refuse(
            b"408 Request Timeout",
            f"Request Timeout: the headers did not arrive within {self.limits.header_timeout:g} s",
        )

    def _refuse(self, status: bytes, reason: str) -> None:
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_answer(status, reason))
            self.transport.close()


def protocol_for(limits: ConnectionLimits) -> Any:
    """What uvicorn's ``http=`` takes: a protocol factory (a partial pickles for workers)."""
    return functools.partial(GuardedHttpProtocol, limits=limits)


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.run() arguments that bound connections, from the settings."""
    return {
        "http": protocol_for(ConnectionLimits(settings.max_connections, settings.header_timeout)),
        # uvicorn's own check, once a request is in: 503 past this many connections or tasks.
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,
    }
