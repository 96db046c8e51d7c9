"""The HTTP client for another index: simple pages and files, over one ``httpx.AsyncClient``.

This layer does one request per call and nothing else: no retries, no hash
checks, no staleness rules (those live above it, in :mod:`tilsit.upstream.sync`
and the proxy). It owns connection reuse, TLS (an optional CA bundle), upstream
credentials (sent only to the upstream's own origin, never to a file host
elsewhere), timeouts, and the translation of every foreign exception into
:mod:`tilsit.upstream.errors`. It counts the requests it sends.

Everything an upstream answers is hostile until checked, here:

- redirects are followed by hand, hop by hop. A page is never followed to
  another origin (scheme, host and port): that would let an upstream pass off
  another index's pages as its own, so it is :class:`UpstreamNotFound`, logged.
  A file may be followed to the upstream's own origin, the origin it was asked
  of, or an origin in ``file_origins`` (the ``upstream_file_origins`` setting);
  else :class:`RedirectRefused`. Credentials go only to the upstream's origin.
- bodies are capped: a page at ``page_max_size`` bytes after decoding (decoded
  here in bounded steps, since one compressed chunk can inflate a thousandfold
  inside a decoder), and refused early when it inflates past
  :data:`MAX_RATIO`; a file at the ``limit`` its caller gives (the size its page
  declared, else ``max_upload_size``). Past a cap reading stops with
  :class:`UpstreamTooLarge`.
"""

from __future__ import annotations

import logging
import ssl
import zlib
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from tilsit.config.origins import Origin, origin_of
from tilsit.upstream.errors import (
    RedirectRefused,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from tilsit.upstream.pages import ACCEPT

__all__ = ["FetchedPage", "FileStream", "UpstreamClient"]

log = logging.getLogger("tilsit.upstream")

DEFAULT_TIMEOUT = 30.0
DEFAULT_PAGE_MAX_SIZE = 64 * 1024 * 1024
MAX_REDIRECTS = 10
# A simple page compresses perhaps tenfold (its hashes are random); past this
# ratio, once 256 KiB are out, a body is a bomb and is refused without reading on.
MAX_RATIO = 100
_RATIO_FLOOR = 256 << 10
_CHUNK = 1 << 16
_REDIRECTS = (301, 302, 303, 307, 308)
_DECODING = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


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

    def __init__(self, url: str, response: httpx.Response, limit: int) -> None:
        self.url = url
        self.limit = limit
        self._response = response
        length = response.headers.get("content-length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        if self.content_length is not None and self.content_length > limit:
            raise UpstreamTooLarge(
                url,
                f"the upstream sends {self.content_length} bytes, more than the {limit} allowed",
            )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        with _translated(self.url):
            # As the connection delivers them (httpcore reads at most 64 KiB at a time, so a
            # chunk stays bounded): re-chunking to a fixed size would copy every byte once more.
            async for chunk in self._response.aiter_raw():
                received += len(chunk)
                if received > self.limit:
                    raise UpstreamTooLarge(
                        self.url, f"more than the {self.limit} bytes allowed; not read further"
                    )
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


async def _read_page(url: str, response: httpx.Response, cap: int) -> bytes:
    """The decoded body, read in bounded steps; :class:`UpstreamTooLarge` past ``cap``."""
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        decoder = None
    elif coding in _DECODING:
        decoder = zlib.decompressobj(_DECODING[coding])
    else:
        raise UpstreamProtocolError(url, f"a page in Content-Encoding {coding!r}, not asked for")
    body = bytearray()
    raw = 0

    def take(piece: bytes) -> None:
        body.extend(piece)
        if len(body) > cap:
            raise UpstreamTooLarge(url, f"a page over {cap} bytes (upstream_page_max_size)")
        if decoder is not None and len(body) > _RATIO_FLOOR and len(body) > MAX_RATIO * raw:
            raise UpstreamTooLarge(
                url, f"{raw} compressed bytes inflate to over {len(body)}: a compression bomb"
            )

    try:
        async for chunk in response.aiter_raw(_CHUNK):
            if decoder is None:
                raw += len(chunk)
                take(chunk)
                continue
            while chunk:
                # Never more than the room left (plus one byte, to notice the overflow),
                # and the ratio judged on the compressed bytes consumed so far.
                out = decoder.decompress(chunk, min(cap - len(body) + 1, _CHUNK))
                raw += len(chunk) - len(decoder.unconsumed_tail)
                take(out)
                chunk = decoder.unconsumed_tail
        if decoder is not None:
            take(decoder.flush())
    except zlib.error as exc:
        raise UpstreamProtocolError(url, f"a page that does not decode as {coding}: {exc}") from exc
    return bytes(body)


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
        page_max_size: int = DEFAULT_PAGE_MAX_SIZE,
        file_origins: Collection[Origin] = (),
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.requests = 0  # every request sent, redirects included
        self.page_max_size = page_max_size
        self._origin = origin_of(base_url)
        self._file_origins = {self._origin, *file_origins}
        self._auth = httpx.BasicAuth(*auth) if auth is not None else None
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        )
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False,  # followed by hand: see _send
            headers={"User-Agent": _user_agent(), "Accept-Encoding": "gzip, deflate"},
            event_hooks={"request": [self._count]},
        )

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        connections: int = 8,
        page_max_size: int = DEFAULT_PAGE_MAX_SIZE,
        file_origins: Collection[Origin] = (),
    ) -> UpstreamClient:
        """Build from ``IndexRow.options``: ``upstream``, ``auth``, ``ca_bundle``, ``timeout``."""
        auth = options.get("auth")
        return cls(
            str(options["upstream"]),
            auth=(str(auth["username"]), str(auth["password"])) if auth else None,
            ca_bundle=options.get("ca_bundle"),
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
            connections=connections,
            page_max_size=page_max_size,
            file_origins=file_origins,
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
        return self._auth if origin_of(url) == self._origin else None

    async def _send(self, url: str, headers: dict[str, str], *, file: bool) -> httpx.Response:
        """GET ``url`` as a stream, following only the redirects the module docstring allows.

        The caller closes the response. Raise inside :func:`_translated`.
        """
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            request = self._http.build_request("GET", current, headers=headers)
            response = await self._http.send(request, auth=self._auth_for(current), stream=True)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return response
            await response.aclose()
            try:
                target = str(httpx.URL(current).join(location.strip()))
                moved = origin_of(target)
            except (httpx.InvalidURL, ValueError) as exc:
                raise UpstreamProtocolError(url, f"a redirect to {location!r}: {exc}") from exc
            if moved[0] not in ("http", "https"):
                raise UpstreamProtocolError(url, f"a redirect to {target}, not HTTP")
            if moved != origin_of(current) and not (file and moved in self._file_origins):
                log.warning(
                    "%s: redirect to %s not followed: another origin%s",
                    current,
                    target,
                    "" if file else "; the page is treated as not found",
                )
                if file:
                    raise RedirectRefused(
                        url,
                        f"redirected to {target}, an origin not trusted for files"
                        " (upstream_file_origins)",
                    )
                raise UpstreamNotFound(
                    url,
                    f"redirected to {target}, another origin: not followed",
                    response.status_code,
                )
            current = target
        raise UpstreamProtocolError(url, f"too many redirects (more than {MAX_REDIRECTS})")

    def url(self, relative: str = "") -> str:
        """An absolute URL under the base (``""`` is the root page, ``"name/"`` a project)."""
        return httpx.URL(self.base_url).join(relative).__str__()

    async def fetch_page(self, url: str, etag: str | None = None) -> FetchedPage:
        """GET one simple page, negotiating JSON first (the Accept header pip sends).

        With ``etag``, the request is conditional (``If-None-Match``): an unchanged
        page answers ``status=304`` with an empty body. Redirects within the origin
        are followed and the final URL returned; one to another origin is
        :class:`UpstreamNotFound`. A body over ``page_max_size`` (decoded) raises
        :class:`UpstreamTooLarge`. 404/410 raise :class:`UpstreamNotFound`; network
        trouble, timeouts and 5xx raise :class:`UpstreamUnavailable`; any other
        status raises :class:`UpstreamProtocolError`.
        """
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        with _translated(url):
            response = await self._send(url, headers, file=False)
            try:
                _check_status(url, response, (200, 304))
                body = (
                    b""
                    if response.status_code == 304
                    else await _read_page(url, response, self.page_max_size)
                )
            finally:
                await response.aclose()
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
    async def stream_file(self, url: str, *, limit: int) -> AsyncIterator[FileStream]:
        """GET one file and yield its body as a :class:`FileStream` of raw bytes.

        The bytes are exactly what the upstream sent (no content decoding), so the
        caller can hash them; a body cut short surfaces as
        :class:`UpstreamUnavailable` while iterating, or, when the upstream sent no
        length, as fewer bytes than the page promised. More than ``limit`` bytes
        raise :class:`UpstreamTooLarge` (on entry when the upstream says so, else
        while iterating, before the chunk that passes it). Status errors are raised
        on entry, as for :meth:`fetch_page`; redirects as the module docstring says.
        """
        with _translated(url):
            response = await self._send(url, {"Accept-Encoding": "identity"}, file=True)
        try:
            with _translated(url):
                _check_status(url, response, (200,))
                stream = FileStream(url, response, limit)
            yield stream
        finally:
            with _translated(url):
                await response.aclose()
