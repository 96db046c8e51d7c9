"""The upstream client's connections: httpcore over asyncio's own streams and TLS.

httpx's default network layer (anyio) decrypts TLS itself, through an
``ssl.MemoryBIO``, and hands httpcore one TLS record (16 KiB at most) per read,
each through anyio, httpcore and h11 in Python. asyncio's own TLS (the event
loop's SSL protocol) decrypts everything one socket read brought and buffers it,
so a read here returns up to the 64 KiB httpcore asks for: a quarter of the
trips per body byte. Bodies are most of what a mirror sync moves.

:class:`UpstreamTransport` is httpx's own transport (request and response
mapping, exception translation) with this backend under its connection pool;
everything above it (redirects, caps, hashing) is unchanged. Errors map to
httpcore's exceptions exactly as its own backends map them, so httpx translates
them the same way.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioStream", "UpstreamTransport"]

# What asyncio may buffer per connection before it stops reading the socket
# (twice this): well above one 64 KiB read, so reads return full.
_BUFFER = 1 << 20

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _readable(sock: Any) -> bool:
    """Whether a read would return at once (data or EOF): an idle connection that did is gone."""
    fileno = sock.fileno() if sock is not None else -1
    if fileno < 0:
        return True
    poll = select.poll()
    poll.register(fileno, select.POLLIN)
    return bool(poll.poll(0))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection as asyncio's (reader, writer) pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "timed out reading") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "timed out writing") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # At once, without TLS's goodbye, as httpcore's own backend closes: a peer
        # that never answers it (a hung upstream, after a timeout) must not hold us.
        self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc) or "timed out in the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return self._reader.at_eof() or _readable(self._writer.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections opened with :func:`asyncio.open_connection` (TCP only)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    limit=_BUFFER,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "timed out connecting") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            if isinstance(sock, socket.socket):
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the upstream client connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class UpstreamTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport, its connection pool on :class:`AsyncioBackend`."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx builds its pool on the default backend and takes no other (its
        # ``_pool`` is what handle_async_request uses): the same pool on this one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )
