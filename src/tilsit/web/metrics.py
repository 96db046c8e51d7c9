"""/_/metrics: request counts and latencies in Prometheus text format.

Requests are labelled by a small fixed set of route classes, never the raw
path, so the number of series stays bounded whatever clients ask for. What is
read at scrape time (TUF expiry, this host's journal lag, each mirror's
freshness) costs a few small files and two bounded queries, whatever the
index holds.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tilsit.web.asgi import Message, Receive, Scope, Send, header, respond, text

__all__ = ["Metrics", "MirrorFreshness", "ScrapeFacts", "route_class"]

_LOOPBACK = frozenset(("127.0.0.1", "::1"))
# A request that came through a proxy is not a local scrape, whatever its peer.
_FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def route_class(path: str) -> str:
    segments = path.split("/", 3)
    first = segments[1] if len(segments) > 1 else ""
    second = segments[2] if len(segments) > 2 else ""
    if first == "packages" or second == "packages":
        return "files"
    if first == "simple" or second == "simple":
        return "simple"
    if first == "pypi" or second == "pypi":
        return "json"
    if first == "legacy" or second == "legacy":
        return "upload"
    if second == "tuf":
        return "tuf"
    if first == "_":
        if second == "search":
            return "search"
        if second == "stats":
            return "stats"
        return "other"
    if first in ("", "account", "admin", "project") or second == "project":
        return "ui"
    return "other"


# An upload's answer names why it was refused; its status is the bounded part of that.
_UPLOAD_OUTCOMES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "busy",
}


def _upload_outcome(status: int) -> str:
    if status < 300:
        return "accepted"
    return _UPLOAD_OUTCOMES.get(status, "server_error" if status >= 500 else "other")


@dataclass(frozen=True)
class MirrorFreshness:
    index: str
    upstream_serial: int | None
    synced_serial: int | None
    last_success: datetime | None


@dataclass(frozen=True)
class ScrapeFacts:
    """What the database and this host's tree say at scrape time."""

    newest_serial: int  # the shared journal's newest serial
    rendered_serial: int  # what this host's tree has rendered (its .serial)
    mirrors: tuple[MirrorFreshness, ...]


class Metrics:
    def __init__(
        self,
        access: str,
        token: str,
        trust: Callable[[], dict[str, Any]],
        facts: Callable[[], ScrapeFacts] | None = None,
        host: str = "",
    ) -> None:
        self.access = access
        self.token = token
        self.trust = trust  # /_/health's expiry report, read at scrape time
        self.facts = facts
        self.host = host
        self.registry = CollectorRegistry()
        self.journal_lag = Gauge(
            "tilsit_journal_lag_serials",
            "The shared journal's newest serial minus the serial this host's tree has rendered.",
            ("host",),
            registry=self.registry,
        )
        self.rendered = Gauge(
            "tilsit_rendered_serial",
            "The journal serial this host's tree has rendered.",
            ("host",),
            registry=self.registry,
        )
        self.mirror_lag = Gauge(
            "tilsit_mirror_lag_serials",
            "A mirror's upstream serial (at its last sync) minus the serial it has in place.",
            ("index",),
            registry=self.registry,
        )
        self.mirror_success = Gauge(
            "tilsit_mirror_last_success_timestamp_seconds",
            "When a mirror's last sync succeeded (Unix time; absent before the first).",
            ("index",),
            registry=self.registry,
        )
        self.requests = Counter(
            "tilsit_requests",
            "HTTP requests by route class and status.",
            ("route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "tilsit_request_seconds",
            "Time to answer a request, by route class.",
            ("route",),
            registry=self.registry,
        )
        self.expiry = Gauge(
            "tilsit_tuf_expiry_seconds",
            'Seconds until a TUF role\'s metadata expires (root and targets: index "*").',
            ("index", "role"),
            registry=self.registry,
        )

        self.uploads = Counter(
            "tilsit_uploads",
            "Upload requests: accepted, or refused by reason class (from the answer's status).",
            ("outcome",),
            registry=self.registry,
        )

    def _read_trust(self) -> None:
        report = self.trust().get("trust", {})
        self.expiry.clear()  # an index that left the tree leaves the scrape too
        for role in ("root", "targets"):
            if role in report:
                self.expiry.labels("*", role).set(report[role]["seconds_left"])
        for index, roles in report.get("indexes", {}).items():
            for role in ("timestamp", "snapshot"):
                if role in roles:
                    self.expiry.labels(index, role).set(roles[role]["seconds_left"])

    def _read_facts(self) -> None:
        if self.facts is None:
            return
        facts = self.facts()
        self.journal_lag.labels(self.host).set(max(0, facts.newest_serial - facts.rendered_serial))
        self.rendered.labels(self.host).set(facts.rendered_serial)
        self.mirror_lag.clear()  # a deleted mirror leaves the scrape
        self.mirror_success.clear()
        for mirror in facts.mirrors:
            if mirror.upstream_serial is not None:
                synced = mirror.synced_serial or 0
                self.mirror_lag.labels(mirror.index).set(max(0, mirror.upstream_serial - synced))
            if mirror.last_success is not None:
                self.mirror_success.labels(mirror.index).set(mirror.last_success.timestamp())

    def counting(self, scope: Scope, send: Send) -> Send:
        route = route_class(scope["path"])
        upload = route == "upload" and scope["method"] == "POST"
        started = time.perf_counter()

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.requests.labels(route, str(message["status"])).inc()
                self.latency.labels(route).observe(time.perf_counter() - started)
                if upload:
                    self.uploads.labels(_upload_outcome(message["status"])).inc()
            await send(message)

        return counted

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        if self.access == "token":
            if not self.token:
                return 403, "Forbidden: metrics_access is token but no metrics_token is set"
            given = header(scope, b"authorization") or ""
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return 401, "Unauthorized: /_/metrics needs the bearer token (metrics_token)"
            return None
        client = scope.get("client")
        peer = client[0] if client else ""
        if peer not in _LOOPBACK:
            return 403, "Forbidden: /_/metrics answers loopback peers only (metrics_access)"
        if any(header(scope, name) is not None for name in _FORWARDED):
            return 403, "Forbidden: /_/metrics is not served through a proxy (metrics_access)"
        return None

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        if (refused := self.refusal(scope)) is not None:
            extra = [(b"www-authenticate", b"Bearer")] if refused[0] == 401 else []
            await text(send, refused[0], refused[1], extra, head=head)
            return
        await anyio.to_thread.run_sync(self._read_trust)
        await anyio.to_thread.run_sync(self._read_facts)
        body = generate_latest(self.registry)
        await respond(send, 200, body, head=head, content_type=CONTENT_TYPE_LATEST.encode())
