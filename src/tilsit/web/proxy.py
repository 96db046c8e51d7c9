"""Read routes of proxy indexes: bring a page or file into the tree, then serve the tree.

:class:`TilsitApp` hands over only what concerns a proxy index: its simple and
legacy JSON pages, and ``/packages/`` paths the tree does not have (yet) while
some proxy index exists. Which indexes are proxies, with their options, is kept
in memory and read again at most every few seconds (``index set`` may change a
TTL), so a hosted index's reads cost no query here.

What a client sees:

- a page within its TTL, or just refreshed: the tree's page, as for any index,
  with ``Cache-Control: max-age=<TTL>`` (a cache in front revalidates when tilsit would);
- a cached page whose upstream cannot be reached: the tree's page with
  ``Warning: 110 - "Response is Stale"``, ``X-Tilsit-Stale: <reason>`` and
  ``Cache-Control: no-cache`` (so no cache in front keeps the stale copy);
- a project the upstream does not have: 404 (remembered briefly);
- a page or file that is not cached and cannot be fetched: 502 (connection
  refused or reset, 5xx, a file whose bytes do not match the page) or 504
  (the upstream timed out), with a plain-text body saying so;
- a file fetched on first request: 200 with the page's size as
  ``Content-Length``, streamed while it arrives. If its bytes turn out not to
  match the page, the response ends before its last byte and the server drops
  the connection: clients report a broken or incomplete transfer, never a
  complete wrong file.
"""

from __future__ import annotations

import logging
import os
import re
import time

import anyio.to_thread

from tilsit.instance import Instance
from tilsit.spec.names import is_valid_name, normalize
from tilsit.upstream.errors import UpstreamError, UpstreamNotFound
from tilsit.upstream.proxy.files import ProxyFile
from tilsit.upstream.proxy.fill import Proxy
from tilsit.upstream.proxy.index import ProxyIndex, timed_out
from tilsit.upstream.proxy.pages import PageStatus
from tilsit.web.asgi import Headers, Message, Scope, Send, header, respond, text
from tilsit.web.read import ReadRoutes

__all__ = ["STALE_HEADERS", "ProxyRoutes"]

log = logging.getLogger("tilsit.proxy")

_IMMUTABLE = b"max-age=31536000, immutable, public"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
STALE_HEADERS: Headers = [
    (b"warning", b'110 - "Response is Stale"'),
    (b"cache-control", b"no-cache"),
]
# With no proxy index known, look in the database again at most this often
# (another process may have created one), and only on a /packages/ tree miss.
_DISCOVER_EVERY = 5.0
_NOT_FETCHED = (b"x-tilsit-fetched", b"no")


def _with_headers(send: Send, added: Headers) -> Send:
    """``send`` with ``added`` replacing the response's headers of the same names."""
    names = {name for name, _ in added}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
            message = {**message, "headers": [*kept, *added]}
        await send(message)

    return wrapped


def _ttl_cached(send: Send, index: ProxyIndex) -> Send:
    """A proxy's pages may be cached for its TTL (the page-wide ``page_max_age`` is a
    hosted index's). Wrapped outside the stale answer's ``send``, whose ``no-cache``
    is applied last and so wins."""
    max_age = f"max-age={int(index.ttl)}, public".encode()
    return _with_headers(send, [(b"cache-control", max_age)])


class ProxyRoutes:
    def __init__(self, instance: Instance, read: ReadRoutes) -> None:
        self.read = read
        self.root = str(instance.settings.tree_dir)
        self.proxy = Proxy(instance)
        self._kinds: dict[str, ProxyIndex | None] = {}
        self.active = False  # whether any proxy index is known to this process
        self._learn(self.proxy.index_kinds())
        self._next_discovery = time.monotonic() + _DISCOVER_EVERY

    def _learn(self, kinds: dict[str, ProxyIndex | None]) -> None:
        self._kinds = kinds
        self._learned = time.monotonic()
        self.active = any(kind is not None for kind in kinds.values())

    async def index(self, name: str) -> ProxyIndex | None:
        """The proxy index named ``name``; None for any other kind.

        From memory, read again when unknown or older than a few seconds: another
        process may have created the index, or changed its options (TTL, upstream).
        """
        if name in self._kinds and time.monotonic() - self._learned < _DISCOVER_EVERY:
            return self._kinds[name]
        self._learn(await anyio.to_thread.run_sync(self.proxy.index_kinds))
        return self._kinds.get(name)

    def _in_tree(self, path: str) -> bool:
        return os.path.isfile(os.path.join(self.root, path.lstrip("/")))

    async def serves_file(self, path: str) -> bool:
        """Whether ``/packages/...`` ``path`` is this handler's: a tree miss with proxies about."""
        if not self.active:
            now = time.monotonic()
            if now < self._next_discovery or self._in_tree(path):
                return False
            self._next_discovery = now + _DISCOVER_EVERY
            self._learn(await anyio.to_thread.run_sync(self.proxy.index_kinds))
            if not self.active:
                return False
        return not self._in_tree(path)

    async def aclose(self) -> None:
        await self.proxy.aclose()

    # -- pages ----------------------------------------------------------------------

    async def _page(self, scope: Scope, send: Send, index: ProxyIndex, name: str) -> Send | None:
        """Bring ``name``'s page up to date; the ``send`` to serve it with, or None if answered."""
        head = scope["method"] == "HEAD"
        if not is_valid_name(name):
            return send  # not a project name: the tree answers 404
        outcome = await self.proxy.page(index, name)
        if outcome.status is PageStatus.FRESH:
            return send
        if outcome.status is PageStatus.MISSING:
            await text(
                send,
                404,
                f"Not Found: the upstream of index {index.name!r} has no project {name!r}",
                head=head,
            )
            return None
        assert outcome.error is not None
        if outcome.status is PageStatus.STALE:
            reason = "upstream timed out" if timed_out(outcome.error) else "upstream unreachable"
            return _with_headers(send, [*STALE_HEADERS, (b"x-tilsit-stale", reason.encode())])
        await self._upstream_failed(
            send, outcome.error, head, f"project {name!r} of index {index.name!r}"
        )
        return None

    async def simple(
        self, scope: Scope, send: Send, index: ProxyIndex, base: str, rest: str
    ) -> None:
        """As :meth:`ReadRoutes.simple`, after fetching or revalidating a project page."""
        name = rest.strip("/")
        if rest == "/":
            # The project list: from the tree, which must first have the projects this
            # process has answered for (their pages are rendered at a burst's end).
            await self.proxy.until_rendered(index, None)
        elif name and "/" not in name and rest.endswith("/") and normalize(name) == name:
            served = await self._page(scope, send, index, name)
            if served is None:
                return
            send = served
            # Durable, not rendered yet: the bytes the tree will hold, served now.
            unrendered = self.proxy.unrendered(index, name)
            if unrendered is not None:
                await self.read.simple(
                    scope, _ttl_cached(send, index), index.name, base, rest, unrendered.pages
                )
                return
        await self.read.simple(scope, _ttl_cached(send, index), index.name, base, rest)

    async def legacy_json(
        self, scope: Scope, send: Send, index: ProxyIndex, prefix: str, rest: str
    ) -> None:
        """As :meth:`ReadRoutes.legacy_json`, after fetching or revalidating the project."""
        parts = rest.rstrip("/").split("/")
        if len(parts) in (2, 3) and parts[-1] == "json" and normalize(parts[0]) == parts[0]:
            served = await self._page(scope, send, index, parts[0])
            if served is None:
                return
            send = served
            await self.proxy.until_rendered(index, parts[0])  # only the tree has legacy JSON
        await self.read.legacy_json(scope, _ttl_cached(send, index), index.name, prefix, rest)

    # -- files ----------------------------------------------------------------------

    async def package_file(self, scope: Scope, send: Send, path: str) -> None:
        """``/packages/<aa>/<bb>/<rest>/<filename>[.metadata]`` that the tree lacks."""
        head = scope["method"] == "HEAD"
        parts = path.split("/")
        sha256 = "".join(parts[2:5]) if len(parts) == 6 else ""
        if not _SHA256.match(sha256) or parts[5] in ("", ".", "..") or "/" in parts[5]:
            await self.read.package_file(scope, send, path)
            return
        target = await anyio.to_thread.run_sync(self.proxy.files.find_file, sha256, parts[5])
        if target is None:
            await self.read.package_file(scope, send, path)  # a 404, or served meanwhile
            return
        etag = f'"{target.sha256[:40]}"' if target.metadata else f'"{target.sha256}"'
        inm = header(scope, b"if-none-match")
        if inm is not None and etag in (c.strip().removeprefix("W/") for c in inm.split(",")):
            headers = [(b"etag", etag.encode()), (b"cache-control", _IMMUTABLE)]
            await respond(send, 304, b"", headers, head=True, content_type=None)
            return
        if not target.stored and "only-if-cached" in (header(scope, b"cache-control") or ""):
            # RFC 9111: answer from what is held, never from upstream (`tilsit verify`
            # asks so, to tell a file not fetched yet from one that should be signed).
            reason = "Gateway Timeout: not fetched from the upstream yet (only-if-cached)"
            await text(send, 504, reason, [_NOT_FETCHED], head=head)
            return
        if head and target.size is not None and not target.stored:
            # What the page promises, without fetching the bytes just to count them.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self._file_headers(etag, target.size),
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if head or header(scope, b"range") is not None:
            # Ranges and HEAD are answered by the tree, once the file is in it.
            error = await self.proxy.files.fetch_to_tree(target)
            if error is not None:
                await self._file_failed(send, error, head, target)
                return
            await self.read.package_file(scope, send, path)
            return
        await self._stream(send, target, etag, path)

    def _file_headers(self, etag: str, length: int | None) -> Headers:
        headers: Headers = [
            (b"cache-control", _IMMUTABLE),
            (b"etag", etag.encode()),
            (b"content-type", b"application/octet-stream"),
        ]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        return headers

    async def _stream(self, send: Send, target: ProxyFile, etag: str, path: str) -> None:
        async with self.proxy.files.open_file(target) as fetch:
            try:
                await fetch.wait_started()
            except UpstreamError as exc:
                await self._file_failed(send, exc, False, target)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self._file_headers(etag, fetch.length),
                }
            )
            try:
                async for chunk in fetch.chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError as exc:
                # Returning with the response unfinished makes the server drop the
                # connection: the client sees a transfer cut short, not a whole file.
                log.warning("%s: transfer aborted: %s", path, exc)
                return
            await send({"type": "http.response.body", "body": b""})

    async def _file_failed(
        self, send: Send, error: UpstreamError, head: bool, target: ProxyFile
    ) -> None:
        what = target.name
        if isinstance(error, UpstreamNotFound):
            for source in target.sources:
                self.proxy.forget_page(source.index, source.project)
            await text(
                send,
                404,
                f"Not Found: the upstream of index {target.index.name!r} no longer has {what}",
                head=head,
            )
            return
        await self._upstream_failed(send, error, head, f"{what} of index {target.index.name!r}")

    async def _upstream_failed(
        self, send: Send, error: UpstreamError, head: bool, what: str
    ) -> None:
        if timed_out(error):
            status, title = 504, "Gateway Timeout: the upstream did not answer in time"
        else:
            status, title = 502, "Bad Gateway: the upstream could not be used"
        await text(
            send,
            status,
            f"{title} for {what}, and no copy is cached here.\n{error}",
            head=head,
        )
