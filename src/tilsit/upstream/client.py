"""The HTTP client for another index: simple pages and files, over one ``httpx.AsyncClient``.

This layer does one request per call and nothing else: no retries, no hash
checks, no staleness rules (those live above it, in :mod:`tilsit.upstream.sync`
and the proxy). It owns connection reuse, TLS (an optional CA bundle), upstream
credentials (sent only to the upstream's own origin, never to a file host
elsewhere), timeouts, and the translation of every foreign exception into
:mod:`tilsit.upstream.errors`. It counts the requests it sends.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import httpx

from tilsit.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from tilsit.upstream.pages import ACCEPT

__all__ = ["FetchedPage", "FileStream", "UpstreamClient"]

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 16


def _user_agent() -> str:
    try:
        return f"tilsit/{version('tilsit')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "tilsit"


@dataclass(frozen=True, slots=True)
class FetchedPage:
    status: int  # 200, or 304 when the ETag sent still matches (then body is b"")
    url: str  # after redirects: what relative file URLs resolve against
    body: bytes
    content_type: str | None
    etag: str | None
    serial: int | None  # X-PyPI-Last-Serial, when the upstream sends it


class FileStream:
    """The body of one file response: iterate it (``async for chunk in stream``)."""

    def __init__(self, url: str, response: httpx.Response) -> None:
        self.url = url
        self._response = response
        length = response.headers.get("content-length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated(self.url):
            async for chunk in self._response.aiter_raw(_CHUNK):
                yield chunk


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """The one place where httpx, ssl and OS errors become :class:`UpstreamError`."""
    try:
        yield
    except UpstreamError:
        raise
    except httpx.TooManyRedirects as exc:
        raise UpstreamProtocolError(url, f"too many redirects: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamUnavailable(url, f"timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        # Connect and read errors, resets, and a body cut short of its Content-Length.
        raise UpstreamUnavailable(
            url, f"{type(exc).__name__}: {exc or 'connection failed'}"
        ) from exc
    except httpx.HTTPError as exc:  # decoding errors and the like
        raise UpstreamProtocolError(url, f"{type(exc).__name__}: {exc}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise UpstreamUnavailable(url, f"{type(exc).__name__}: {exc}") from exc


def _check_status(url: str, response: httpx.Response, ok: tuple[int, ...]) -> None:
    status = response.status_code
    if status in ok:
        return
    if status in (404, 410):
        raise UpstreamNotFound(url, f"HTTP {status}", status)
    if status >= 500 or status in (408, 429):
        raise UpstreamUnavailable(url, f"HTTP {status}", status)
    raise UpstreamProtocolError(url, f"unexpected HTTP {status}", status)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower().rpartition("@")[2]


class UpstreamClient:
    """One upstream index: its base URL, credentials and TLS trust, over pooled connections.

    Use as ``async with UpstreamClient(...) as client``. Each method sends one
    request (plus any redirects) and raises only :class:`UpstreamError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        ca_bundle: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connections: int = 8,
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.requests = 0  # every request sent, redirects included
        self._origin = _origin(base_url)
        self._auth = httpx.BasicAuth(*auth) if auth is not None else None
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        )
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=True,
            headers={"User-Agent": _user_agent()},
            event_hooks={"request": [self._count]},
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, connections: int = 8) -> UpstreamClient:
        """Build from ``IndexRow.options``: ``upstream``, ``auth``, ``ca_bundle``, ``timeout``."""
        auth = options.get("auth")
        return cls(
            str(options["upstream"]),
            auth=(str(auth["username"]), str(auth["password"])) if auth else None,
            ca_bundle=options.get("ca_bundle"),
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
            connections=connections,
        )

    async def _count(self, _request: httpx.Request) -> None:
        self.requests += 1

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _auth_for(self, url: str) -> httpx.BasicAuth | None:
        return self._auth if _origin(url) == self._origin else None

    def url(self, relative: str = "") -> str:
        """An absolute URL under the base (``""`` is the root page, ``"name/"`` a project)."""
        return httpx.URL(self.base_url).join(relative).__str__()

    async def fetch_page(self, url: str, etag: str | None = None) -> FetchedPage:
        """GET one simple page, negotiating JSON first (the Accept header pip sends).

        With ``etag``, the request is conditional (``If-None-Match``): an unchanged
        page answers ``status=304`` with an empty body. Redirects are followed and
        the final URL returned. 404/410 raise :class:`UpstreamNotFound`; network
        trouble, timeouts and 5xx raise :class:`UpstreamUnavailable`; any other
        status raises :class:`UpstreamProtocolError`.
        """
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        with _translated(url):
            response = await self._http.get(url, headers=headers, auth=self._auth_for(url))
            _check_status(url, response, (200, 304))
            body = b"" if response.status_code == 304 else response.content
        serial_header = response.headers.get("x-pypi-last-serial", "").strip()
        return FetchedPage(
            status=response.status_code,
            url=str(response.url),
            body=body,
            content_type=response.headers.get("content-type"),
            etag=response.headers.get("etag") or (etag if response.status_code == 304 else None),
            serial=int(serial_header) if serial_header.isdigit() else None,
        )

    @asynccontextmanager
    async def stream_file(self, url: str) -> AsyncIterator[FileStream]:
        """GET one file and yield its body as a :class:`FileStream` of raw bytes.

        The bytes are exactly what the upstream sent (no content decoding), so the
        caller can hash them; a body cut short surfaces as
        :class:`UpstreamUnavailable` while iterating, or, when the upstream sent no
        length, as fewer bytes than the page promised. Status errors are raised on
        entry, as for :meth:`fetch_page`.
        """
        with _translated(url):
            request = self._http.build_request("GET", url, headers={"Accept-Encoding": "identity"})
            response = await self._http.send(request, auth=self._auth_for(url), stream=True)
        try:
            with _translated(url):
                _check_status(url, response, (200,))
            yield FileStream(url, response)
        finally:
            with _translated(url):
                await response.aclose()
