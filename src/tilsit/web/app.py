"""The ASGI application: a small path router in front of the route handlers.

The read path is plain ASGI, not a framework router: it is the hot path, and
all it does is pick a tree file (see ARCHITECTURE principle 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from dataclasses import asdict

import anyio.to_thread

from tilsit import __version__
from tilsit.cooldowns import mature_cooldowns
from tilsit.freshness import keep_fresh
from tilsit.hosts import follow_other_hosts
from tilsit.instance import Instance
from tilsit.render.coalesce import coalesce_index_pages
from tilsit.render.legacy import base_url_warning
from tilsit.trust.expiry import trust_health
from tilsit.upstream.mirror_trust import carry_here
from tilsit.upstream.schedule import run_schedule
from tilsit.upstream.status import refresh_statuses
from tilsit.web.asgi import Receive, Scope, Send, header, respond, text
from tilsit.web.bodies import CappedBody
from tilsit.web.downloads import DownloadCounter
from tilsit.web.gate import ReadGate, challenge, original_path
from tilsit.web.hosts import mail_links_warning
from tilsit.web.metrics import Metrics
from tilsit.web.multipart import UPLOAD_TEMP
from tilsit.web.osv import OsvRoutes
from tilsit.web.proxy import ProxyRoutes
from tilsit.web.read import ReadRoutes
from tilsit.web.requestpath import path_problem
from tilsit.web.scrape import scrape_facts
from tilsit.web.storedfiles import stored_files
from tilsit.web.surrogate import with_surrogate_keys
from tilsit.web.treefiles import TreeFiles
from tilsit.web.ui import build_ui
from tilsit.web.ui.context import MAX_FORM_BYTES
from tilsit.web.upload import UploadRoute
from tilsit.web.virtual import VirtualRoutes
from tilsit.web.xmlrpc import XmlRpcRoute

__all__ = ["TilsitApp"]

log = logging.getLogger("tilsit.web")
_READ_METHODS = ("GET", "HEAD")
# First path segments that belong to the web UI (index names cannot take them).
_UI_AREAS = frozenset(("", "account", "admin", "project"))
# First path segments that name the default index's areas (/simple/, /pypi/, /legacy/).
_DEFAULT_INDEX_AREAS = frozenset(("simple", "pypi", "legacy"))


class TilsitApp:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        settings = instance.settings
        self.default_index = settings.default_index
        stored = stored_files(instance)  # an object store's files: pointers in the tree
        self.files = TreeFiles(
            settings.tree_dir, settings.page_cache_size, stored.send if stored else None
        )
        self.read = ReadRoutes(self.files, settings.page_max_age, settings.cache_control)
        self.upload = UploadRoute(instance)
        UPLOAD_TEMP.limit = settings.upload_temp_max  # one budget per process: its disk
        self.downloads = DownloadCounter(instance.db, settings)
        self.proxy = ProxyRoutes(instance, self.read)
        self.virtual = VirtualRoutes(instance, self.read, self.proxy)
        self.ui = build_ui(instance)
        self.gate = ReadGate(instance.db, settings.tree_dir, default_index=settings.default_index)
        self.xmlrpc = XmlRpcRoute(instance.db, self.gate)
        self.osv = OsvRoutes(instance.db)  # /osv/v1/: imported OSV records
        self.metrics = Metrics(
            settings.metrics_access,
            settings.metrics_token,
            lambda: trust_health(instance.signing),
            lambda: scrape_facts(instance),
            settings.host_name or socket.gethostname(),
        )  # /_/metrics
        self._schedule: asyncio.Task[None] | None = None
        self._freshness: asyncio.Task[None] | None = None
        self._lists: asyncio.Task[None] | None = None
        self._maturing: asyncio.Task[None] | None = None
        self._hosts: asyncio.Task[None] | None = None  # other hosts' writes (PostgreSQL)
        self._stop_schedule = asyncio.Event()

    def _after_catching_up(self) -> None:
        """What another host changed without rows this one renders: a mirror's status,
        and a carried mirror's signed metadata (the origin's, carried by each host)."""
        refresh_statuses(self.instance.db, self.instance.tree)
        carry_here(self.instance)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        head = method == "HEAD"
        if path == "/_/metrics":
            await self.metrics.serve(scope, receive, send)
            return
        send = self.metrics.counting(scope, send)  # route class and status, never the path
        if (problem := path_problem(path)) is not None:
            await text(send, problem.status, problem.reason, head=head)
            return
        # CDN: every read response names its index and project (docs/cdn.md).
        send = with_surrogate_keys(scope, send, self.default_index)
        segments = path.split("/", 3)  # "", first, second, rest
        first = segments[1] if len(segments) > 1 else ""

        if first == "osv" and len(segments) > 2 and segments[2] == "v1":
            # The OSV API; "v1" is no area of an index, so an index named "osv" keeps its paths.
            await self.osv(scope, receive, send, segments[3] if len(segments) > 3 else "")
            return
        if first == "packages":
            if method not in _READ_METHODS:
                await self._method_not_allowed(send, "GET, HEAD")
                return
            send = self.downloads.counting(scope, send, path)  # memory only; flushed in batches
            if await self.proxy.serves_file(path):  # in memory unless a proxy index exists
                await self.proxy.package_file(scope, send, path)
                return
            await self.read.package_file(scope, send, path)
            return
        if first == "_":
            if path.startswith(("/_/oidc/", "/_/static/")):
                capped = CappedBody(receive, send, MAX_FORM_BYTES, "a request")
                await self.ui(scope, capped.receive, capped.send)
                return
            if path == "/_/search" or path.startswith("/_/stats/"):
                # Search and download statistics are read-only APIs: refused here, so the UI
                # declares no POST route that is not a CSRF-checked form.
                if method not in _READ_METHODS:
                    await self._method_not_allowed(send, "GET, HEAD")
                    return
                await self.ui(scope, receive, send)
                return
            if path.startswith("/_/auth/"):
                await self._auth(scope, send, path[len("/_/auth/") :])
                return
            await self._operations(scope, send, path)
            return
        if first in _UI_AREAS:
            # A chunked form has no Content-Length for the pages to check: count it.
            capped = CappedBody(receive, send, MAX_FORM_BYTES, "a form")
            await self.ui(scope, capped.receive, capped.send)
            return

        if first not in _DEFAULT_INDEX_AREAS and (
            len(segments) == 2 or segments[2] in ("", "project")
        ):
            # An index's browsing pages: /<index>/ and /<index>/project/<name>/[<version>/].
            capped = CappedBody(receive, send, MAX_FORM_BYTES, "a form")
            await self.ui(scope, capped.receive, capped.send)
            return
        if len(segments) == 4 and segments[2] == "tuf":
            # TUF metadata, gated like the rest of the index.
            if method not in _READ_METHODS:
                await self._method_not_allowed(send, "GET, HEAD")
                return
            if (admitted := await self.gate.admit(scope, send, first)) is not None:
                await self.read.tuf(scope, admitted, first, segments[3])
            return
        if len(segments) == 3 and segments[2] == "mirror-status.json":
            if (admitted := await self.gate.admit(scope, send, first)) is not None:
                await self._mirror_status(scope, admitted, first)
            return
        if len(segments) > 2 and segments[2] == "packages":
            # A private index's files, under its own path so that this check applies.
            if method not in _READ_METHODS:
                await self._method_not_allowed(send, "GET, HEAD")
                return
            if (admitted := await self.gate.admit(scope, send, first)) is not None:
                shared_path = path[len(first) + 1 :]  # /packages/…, as the counter reads it
                admitted = self.downloads.counting(scope, admitted, shared_path)
                virtual = await self.virtual.index(first)
                if virtual is not None:
                    await self.virtual.package_file(scope, admitted, virtual, shared_path)
                    return
                await self.read.package_file(scope, admitted, shared_path, f"{first}/")
            return

        # /simple/..., /pypi/..., /legacy/ are the default index's; /<index>/... any index's.
        if first in _DEFAULT_INDEX_AREAS:
            index, prefix, area = self.default_index, "", first
            rest = path[len(first) + 1 :]
        elif len(segments) > 2 and segments[2] in ("simple", "pypi", "legacy"):
            index, prefix, area = first, f"/{first}", segments[2]
            rest = path[len(first) + len(area) + 2 :]
        else:
            await text(send, 404, f"Not Found: {path}", head=head)
            return

        if area == "legacy" and method == "POST" and rest in ("", "/"):
            await self.upload(scope, receive, send, index)
            return
        if area == "pypi" and method == "POST" and rest in ("", "/"):
            await self.xmlrpc(scope, receive, send, index)  # older mirror clients' XML-RPC
            return
        admitted = await self.gate.admit(scope, send, index)
        if admitted is None:
            return
        send = admitted
        if area == "legacy":
            if method in _READ_METHODS and rest.startswith("/+simple"):
                # hatch looks for the simple page below its upload URL.
                await self.read.simple(
                    scope, send, index, f"{prefix}/legacy/+simple", rest[len("/+simple") :]
                )
                return
            await self._method_not_allowed(send, "POST")
            return
        if method not in _READ_METHODS:
            await self._method_not_allowed(send, "GET, HEAD")
            return
        if not self._index_exists(index):
            await text(send, 404, f"Not Found: there is no index named {index!r}", head=head)
            return
        if area == "simple" and await self.read.hashed_page(scope, send, index, rest):
            return  # a TUF client's <sha256>.<page>, for every kind of index
        proxy = await self.proxy.index(index)  # in memory once the name is known
        if proxy is not None:
            if area == "simple":
                await self.proxy.simple(scope, send, proxy, f"{prefix}/simple", rest)
            else:
                await self.proxy.legacy_json(scope, send, proxy, prefix, rest.lstrip("/"))
            return
        virtual = await self.virtual.index(index)
        if virtual is not None:
            if area == "simple":
                await self.virtual.simple(scope, send, virtual, f"{prefix}/simple", rest)
            else:
                await self.virtual.legacy_json(scope, send, virtual, prefix, rest.lstrip("/"))
            return
        if area == "simple":
            await self.read.simple(scope, send, index, f"{prefix}/simple", rest)
        else:
            await self.read.legacy_json(scope, send, index, prefix, rest.lstrip("/"))

    async def _mirror_status(self, scope: Scope, send: Send, index: str) -> None:
        """``/<index>/mirror-status.json``: the freshness a mirror writes into its tree."""
        head = scope["method"] == "HEAD"
        if scope["method"] not in _READ_METHODS:
            await self._method_not_allowed(send, "GET, HEAD")
            return
        entry = self.files.page(f"{index}/mirror-status.json", with_serial=False)
        if entry is None:
            await text(send, 404, f"Not Found: {index!r} is not a synced mirror index", head=head)
            return
        await self.files.send_page(
            scope, send, entry, [(b"cache-control", b"no-cache")], b"application/json"
        )

    async def _auth(self, scope: Scope, send: Send, index: str) -> None:
        """``/_/auth/<index>``: nginx's ``auth_request`` asks whether a request may read."""
        if not index or "/" in index or index.startswith("."):
            await text(send, 404, f"Not Found: {scope['path']}", head=scope["method"] == "HEAD")
            return
        # The path nginx is about to serve decides, as when tilsit serves it itself.
        path = original_path(header(scope, b"x-original-uri"))
        status, reason = await self.gate.decide(header(scope, b"authorization"), index, path)
        headers = [(b"cache-control", b"no-store")]
        if status == 401:
            headers.append((b"www-authenticate", challenge(index)))
        if status == 200:
            await respond(send, 204, b"", headers, content_type=None)
            return
        await text(send, status, reason, headers, head=scope["method"] == "HEAD")

    def _index_exists(self, name: str) -> bool:
        # Asked of the tree each time (one stat): another process may have just
        # created the index, or deleted it (its directory leaves the tree).
        return os.path.isdir(os.path.join(self.files.root, name, "simple"))

    async def _operations(self, scope: Scope, send: Send, path: str) -> None:
        if path.startswith("/_/why/"):
            # /_/why/<index>/<project>: a virtual index's verdicts, for its readers.
            index, _, name = path[len("/_/why/") :].partition("/")
            name = name.rstrip("/")
            if scope["method"] not in _READ_METHODS:
                await self._method_not_allowed(send, "GET, HEAD")
                return
            if index and name and "/" not in name:
                admitted = await self.gate.admit(scope, send, index)
                if admitted is not None:
                    await self.virtual.why(scope, admitted, index, name)
                return
        if path == "/_/health":
            # TUF expiries and warnings: root and targets need an operator (offline keys).
            trust = await anyio.to_thread.run_sync(trust_health, self.instance.signing)
            if mail := mail_links_warning(self.instance.settings):
                trust["warnings"] = [*trust["warnings"], mail]
            # A warning, not "degraded": root-relative URLs serve installers well.
            if address := base_url_warning(self.instance.settings.base_url):
                trust["warnings"] = [*trust["warnings"], address]
            failures = await anyio.to_thread.run_sync(self.instance.renderer.render_failures)
            # Degraded, still 200: everything else is served; the list says what is not.
            body = json.dumps(
                {
                    "status": "degraded" if failures else "ok",
                    "version": __version__,
                    "render_failures": [f.as_json() for f in failures],
                    # This process's proxy fills, and the writes and renders they took.
                    "proxy_writes": asdict(self.proxy.proxy.writes.stats),
                    **trust,
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await text(send, 404, f"Not Found: {path}", head=scope["method"] == "HEAD")

    async def _method_not_allowed(self, send: Send, allow: str) -> None:
        await text(send, 405, f"Method Not Allowed: use {allow}", [(b"allow", allow.encode())])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Mirrors with an interval sync inside the server; due-ness is read
                # from the database and each sync takes a per-index lock, so several
                # workers running this loop never sync one mirror twice at once.
                self._stop_schedule = asyncio.Event()
                self._schedule = asyncio.create_task(
                    run_schedule(self.instance, self._stop_schedule)
                )
                # TUF: re-sign before expiry and sweep old versions, under the render lock.
                self._freshness = asyncio.create_task(
                    keep_fresh(self.instance, self._stop_schedule)
                )
                # Large project lists: rendered once per interval, not in every upload.
                self._lists = asyncio.create_task(
                    coalesce_index_pages(
                        self.instance.renderer,
                        self._stop_schedule,
                        size=self.instance.settings.index_page_coalesce_size,
                        interval=self.instance.settings.index_page_interval,
                    )
                )
                # Virtual indexes' cool-downs: files come of age with no request.
                self._maturing = asyncio.create_task(
                    mature_cooldowns(
                        self.instance,
                        self._stop_schedule,
                        tick=self.instance.settings.cooldown_tick,
                    )
                )
                # Several hosts on one database: render what the others wrote.
                self._hosts = asyncio.create_task(
                    follow_other_hosts(
                        self.instance,
                        self._stop_schedule,
                        poll=self.instance.settings.journal_poll,
                        after=self._after_catching_up,
                    )
                )
                self.downloads.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._schedule is not None:
                    self._stop_schedule.set()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._schedule
                if self._freshness is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._freshness
                if self._lists is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._lists
                if self._maturing is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._maturing
                if self._hosts is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._hosts
                await self.downloads.stop()  # the last batch of download counts
                await self.proxy.aclose()
                self.metrics.close()  # a worker's exit, with several (docs/metrics.md)
                self.instance.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
