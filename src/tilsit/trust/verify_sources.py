"""Where ``tilsit verify`` reads a copy of an index from: a server or a tree on disk.

A source is a URL (the index base, ``https://host/<index>/``) or a directory
holding a static tree (``<dir>/<index>/tuf/``), read by :class:`TreeFetcher`
without a server. :class:`Source` gives ngclient its fetcher (one HTTP stack,
:func:`http_client`, for metadata, hashed targets and pages alike) and reads
the plain names pip uses as bounded streams (:class:`PlainRead`), checked
against the signed target info.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from netrc import NetrcParseError
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface

from tilsit.trust.compressed import (
    ACCEPT_ENCODING,
    CompressionBomb,
    UnknownEncoding,
    decoded_chunks,
)
from tilsit.trust.links import JSON_TYPE, PAGE_HTML, PAGE_JSON

__all__ = [
    "FETCHED_HEADER",
    "TREE_URL",
    "HttpxFetcher",
    "PlainRead",
    "RecordingFetcher",
    "Source",
    "TreeFetcher",
    "http_client",
]

# The header a proxy index's answer to only-if-cached carries for a file not fetched yet.
FETCHED_HEADER = "x-tilsit-fetched"
_CHUNK = 1 << 16
TREE_URL = (
    "tilsit-tree:/"  # DIR mode: ngclient builds URLs by concatenation, TreeFetcher maps them back
)


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _hasher(algorithm: str) -> _Hasher:
    """A hash object for a TUF hash name (securesystemslib spells BLAKE2b-256 so)."""
    if algorithm == "blake2b-256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


@dataclass(frozen=True)
class PlainRead:
    """What a bounded, streaming read of a plain name found: how many bytes (at most the
    signed length + 1: past that, reading stopped) and their digests."""

    length: int
    digests: dict[str, str]

    @classmethod
    def of(cls, chunks: Iterable[bytes], info: TargetFile) -> PlainRead:
        try:
            hashers = {name: _hasher(name) for name in info.hashes}
        except ValueError:
            hashers = {}  # an algorithm this Python lacks: reported as a mismatch
        limit = info.length + 1
        seen = 0
        for chunk in chunks:
            part = chunk if seen + len(chunk) <= limit else chunk[: limit - seen]
            for hasher in hashers.values():
                hasher.update(part)
            seen += len(part)
            if seen >= limit:
                break  # more than the signed length: the rest is not read
        return cls(seen, {name: h.hexdigest() for name, h in hashers.items()})

    def problem(self, info: TargetFile) -> str | None:
        """How the bytes differ from the signed target info, or None."""
        if self.length > info.length:
            return f"more than the signed length of {info.length} bytes (reading stopped there)"
        if self.length < info.length:
            return f"{self.length} bytes, the signed length is {info.length}"
        for name, expected in info.hashes.items():
            got = self.digests.get(name)
            if got is None:
                return f"cannot compute the signed {name} hash"
            if got != expected:
                return f"{name} is {got}, signed {expected}"
        return None


class TreeFetcher(FetcherInterface):
    """Reads ``tilsit-tree:/<relative path>`` URLs from a tree on disk.

    A missing file is an HTTP 404 to ngclient, as a server would answer; a path
    that leaves the tree is refused the same way.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_of(self, url: str) -> Path | None:
        if not url.startswith(TREE_URL):
            return None
        path = (self.root / unquote(url.removeprefix(TREE_URL))).resolve()
        return path if path.is_relative_to(self.root) else None

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.path_of(url)
        if path is None or not path.is_file():
            raise tuf_errors.DownloadHTTPError(f"{url}: not found", 404)
        return self._chunks(path)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk


class HttpxFetcher(FetcherInterface):
    """ngclient's downloads through the same httpx client as the plain names.

    One HTTP stack, so ``--cafile``, a token for a private index and
    ``~/.netrc`` apply to metadata, hashed targets and pages alike.
    """

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.http.send(self.http.build_request("GET", url), stream=True)
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            raise tuf_errors.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response)

    @staticmethod
    def _chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from decoded_chunks(url, response)
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
        except (CompressionBomb, UnknownEncoding) as exc:
            raise tuf_errors.DownloadError(str(exc)) from exc
        finally:
            response.close()


def http_client(
    timeout: float, cafile: str | None = None, token: str | None = None
) -> httpx.Client:
    """The client verify reads a server with: the system's CAs (or ``cafile``),
    ``SSL_CERT_FILE`` and ``~/.netrc`` honoured, and a token for a private index
    sent as pip sends it (Basic ``__token__``)."""
    verify: ssl.SSLContext | bool = True
    if cafile:
        verify = ssl.create_default_context(cafile=cafile)
    auth: httpx.Auth | None = httpx.BasicAuth("__token__", token) if token else None
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if auth is None and netrc.is_file():
        # As pip and uv do: credentials for the host from the netrc file.
        try:
            auth = httpx.NetRCAuth(str(netrc))
        except (OSError, NetrcParseError) as exc:
            raise ValueError(f"{netrc}: {exc}") from exc
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        verify=verify,
        auth=auth,
        # Only the codings decoded_chunks inflates (bounded), never br or zstd.
        headers={"user-agent": "tilsit-verify", "accept-encoding": ACCEPT_ENCODING},
    )


class RecordingFetcher(FetcherInterface):
    """Remembers the last URL asked for, so a fault can name the file that failed."""

    def __init__(self, inner: FetcherInterface) -> None:
        self.inner = inner
        self.last_url = ""

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        return self.inner._fetch(url)


class Source:
    """Where metadata, hashed targets and plain names come from."""

    def __init__(
        self,
        source: str,
        index: str | None,
        timeout: float,
        cafile: str | None = None,
        token: str | None = None,
    ) -> None:
        self.tree: TreeFetcher | None = None
        self.http: httpx.Client | None = None
        self.fetcher: FetcherInterface
        if re.match(r"^https?://", source):
            base = source.rstrip("/") + "/"
            if index:
                base += f"{index}/"
            self.index = index or base.rstrip("/").rsplit("/", 1)[-1]
            self.index_base = base
            self.index_path = urlsplit(base).path
            self.http = http_client(timeout, cafile, token)
            self.fetcher = HttpxFetcher(self.http)
        else:
            root = Path(source)
            if not root.is_dir():
                raise ValueError(f"{source}: neither an http(s) URL nor a directory")
            if index is None:
                found = sorted(p.parent.parent.name for p in root.glob("*/tuf/timestamp.json"))
                if len(found) != 1:
                    raise ValueError(
                        f"{source}: holds {len(found)} signed indexes ({', '.join(found) or 'none'}): name one with --index"
                    )
                index = found[0]
            self.index = index
            self.index_base = f"{TREE_URL}{index}/"
            self.index_path = f"/{index}/"
            self.tree = TreeFetcher(root)
            self.fetcher = self.tree
        self.fetcher = self.recorder = RecordingFetcher(self.fetcher)

    @property
    def metadata_url(self) -> str:
        return self.index_base + "tuf/"

    def origin_path(self, url_path: str) -> str:
        """A URL for ``url_path`` (absolute path) on the server or tree being verified."""
        if self.tree is not None:
            return TREE_URL + url_path.lstrip("/")
        parts = urlsplit(self.index_base)
        return f"{parts.scheme}://{parts.netloc}{url_path}"

    def read(self, url: str, info: TargetFile, accept: str | None = None) -> PlainRead | None:
        """Read ``url`` in chunks, hashing as it comes, and stop one byte past the signed
        length; None when absent. No more than one chunk is ever held.

        With ``accept`` set to the JSON type, a directory URL answered with
        anything else (a static server that does not negotiate, as nginx's
        default or ``http.server``) is read again as ``index.v1.json``, the
        name such a server offers for the JSON page.
        """
        if self.tree is not None:
            path = self.tree.path_of(url)
            if path is not None and path.is_dir():
                path = path / (PAGE_JSON if accept == JSON_TYPE else PAGE_HTML)
            if path is None or not path.is_file():
                return None
            with path.open("rb") as fh:
                return PlainRead.of(iter(lambda: fh.read(_CHUNK), b""), info)
        assert self.http is not None
        headers = {"Accept": accept} if accept else {}
        with self.http.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                return None
            response.raise_for_status()
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            if accept == JSON_TYPE and url.endswith("/") and media_type != JSON_TYPE:
                return self.read(url + PAGE_JSON, info)
            try:
                return PlainRead.of(decoded_chunks(url, response), info)
            except (CompressionBomb, UnknownEncoding) as exc:
                raise httpx.DecodingError(str(exc)) from exc

    def not_yet_fetched(self, url: str) -> bool:
        """Whether a proxy index says it has not fetched the file at ``url`` from its
        upstream yet. Asked as HTTP asks a cache (``HEAD`` with ``Cache-Control:
        only-if-cached``, so the proxy never fetches for it); a tilsit proxy answers 504
        with ``X-Tilsit-Fetched: no``. A tree on disk has no proxy behind it: never."""
        if self.http is None:
            return False
        try:
            response = self.http.head(url, headers={"Cache-Control": "only-if-cached"})
        except httpx.HTTPError:
            return False
        return response.status_code == 504 and response.headers.get(FETCHED_HEADER) == "no"

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
