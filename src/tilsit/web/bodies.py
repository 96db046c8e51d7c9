"""Request bodies are read under deadlines: a client cannot hold a request open forever.

A client that trickles its body keeps a connection, a task and (for an upload)
a growing temp file. :class:`BoundedBodies` wraps the app (plain ASGI middleware)
and bounds every body read: each ``receive()`` must bring something within
``idle`` seconds, and the whole body must be in within ``total`` seconds. Past
either, the handler is told the client is gone (``http.disconnect``, which every
handler already treats as the end: the upload route drops its temp file), and if
no answer was started the client gets 408 and the connection is closed.
Once the body is complete, ``receive()`` is passed through untouched (it then
only waits for a disconnect).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from tilsit.config import Settings
from tilsit.web.asgi import Message, Receive, Scope, Send, text

__all__ = ["BoundedBodies", "CappedBody", "bounded"]

_GONE: Message = {"type": "http.disconnect"}
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Body:
    def __init__(self, receive: Receive, send: Send, idle: float, total: float) -> None:
        self._receive = receive
        self._send = send
        self.idle = idle
        self.deadline = time.monotonic() + total
        self.total = total
        self.complete = False
        self.timed_out = ""
        self.started = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        if self.timed_out:
            return _GONE
        left = self.deadline - time.monotonic()
        wait = min(self.idle, left)
        message: Message | None = None
        if wait > 0:
            with anyio.move_on_after(wait):
                message = await self._receive()
        if message is None:
            self.timed_out = (
                f"Request Timeout: no body bytes for {self.idle:g} s"
                if wait == self.idle
                else f"Request Timeout: the body took longer than {self.total:g} s"
            )
            return _GONE
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class CappedBody:
    """A ``receive``/``send`` pair that refuses a body past ``limit`` bytes with 413.

    A Content-Length over the cap is refused by the handler before it reads; a
    chunked body has none, so the bytes are counted as they come: past the cap
    the client is answered 413 (connection closed), the handler is told the
    client is gone, and whatever it sends after is dropped.
    """

    def __init__(self, receive: Receive, send: Send, limit: int, what: str) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.what = what
        self.seen = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return _GONE
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.refused = True
                if not self.started:
                    self.started = True
                    await text(
                        self._send,
                        413,
                        f"Content Too Large: {self.what} may have at most {self.limit} bytes",
                        [(b"connection", b"close")],
                    )
                return _GONE
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BoundedBodies:
    def __init__(self, app: App, *, idle: float, total: float) -> None:
        self.app = app
        self.idle = idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, send, self.idle, self.total)
        await self.app(scope, body.receive, body.send)
        if body.timed_out and not body.started:
            await text(send, 408, body.timed_out, [(b"connection", b"close")])


def bounded(app: App, settings: Settings) -> BoundedBodies:
    """``app`` with the body deadlines of the settings."""
    return BoundedBodies(app, idle=settings.body_idle_timeout, total=settings.body_timeout)
