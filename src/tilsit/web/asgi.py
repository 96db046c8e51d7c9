"""The few ASGI types and helpers the handlers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names are lower case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Headers | None = None,
    *,
    head: bool = False,
    content_type: bytes | None = b"text/plain; charset=utf-8",
) -> None:
    all_headers = list(headers or [])
    if content_type is not None:
        all_headers.append((b"content-type", content_type))
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def text(
    send: Send, status: int, message: str, headers: Headers | None = None, *, head: bool = False
) -> None:
    """A plain-text answer whose body says the reason in words."""
    await respond(send, status, (message.rstrip("\n") + "\n").encode(), headers, head=head)


async def redirect(send: Send, location: str, *, head: bool = False) -> None:
    await text(
        send, 301, f"Moved Permanently: {location}", [(b"location", location.encode())], head=head
    )
