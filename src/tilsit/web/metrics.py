"""/_/metrics: request counts and latencies in Prometheus text format.

Besides its own request counters it shows those the layers below keep (proxy
hits and misses, blob-store failures); with several workers, a scrape sums every
worker's counters from the files prometheus-client's multi-process mode keeps.

Requests are labelled by a small fixed set of route classes, never the raw
path, so the number of series stays bounded whatever clients ask for. What is
read at scrape time (TUF expiry, this host's journal lag, each mirror's
freshness) costs a few small files and two bounded queries, whatever the
index holds.
"""

from __future__ import annotations

import hmac
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from tilsit.store.counted import BLOB_ERRORS
from tilsit.upstream.proxy.counts import PROXY_REQUESTS
from tilsit.web.asgi import Message, Receive, Scope, Send, header, respond, text

__all__ = [
    "MULTIPROCESS_ENV",
    "Metrics",
    "MirrorFreshness",
    "ScrapeFacts",
    "fresh_multiprocess_dir",
    "multiprocess_dir",
    "route_class",
]

_LOOPBACK = frozenset(("127.0.0.1", "::1"))
# A request that came through a proxy is not a local scrape, whatever its peer.
_FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


# prometheus-client reads it when imported: `tilsit serve --workers N` sets it first.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory where every worker's counters are kept, if there are several workers."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def fresh_multiprocess_dir(tmp_dir: Path) -> Path:
    """``<tmp>/metrics``, emptied: the counters of an earlier run's workers are not this one's.

    One ``tilsit serve`` per data directory and host, so no running server's files
    are in it; ``reap_leftovers`` removes only files directly in ``tmp``.
    """
    directory = tmp_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


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


class _AtScrape(Collector):
    """The figures read when a scrape comes (TUF expiry, journal lag, mirrors).

    Collected, not kept in gauges: whichever worker answers reads the same truth
    for this host, so with several workers nothing is written to the shared
    files to be merged (where a gauge's series outlives a deleted mirror, as
    ``clear()`` cannot remove it from another process's file).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # no clash to check, and no database read when registered

    def collect(self) -> list[Metric]:
        return [*self.metrics.trust_families(), *self.metrics.fact_families()]


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
        # Counters of this process; with several workers (PROMETHEUS_MULTIPROC_DIR, set
        # by `tilsit serve`) each writes its own file there, and a scrape sums them all.
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry()
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
        self.uploads = Counter(
            "tilsit_uploads",
            "Upload requests: accepted, or refused by reason class (from the answer's status).",
            ("outcome",),
            registry=self.registry,
        )
        # Counted by the layers below, which may not import web (docs/architecture.md).
        self.registry.register(PROXY_REQUESTS)
        self.registry.register(BLOB_ERRORS)
        self.scraped = CollectorRegistry()
        if self.multiprocess_dir is not None:
            MultiProcessCollector(self.scraped, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self.scraped.register(self.registry)
        self.scraped.register(_AtScrape(self))

    def trust_families(self) -> list[Metric]:
        expiry = GaugeMetricFamily(
            "tilsit_tuf_expiry_seconds",
            'Seconds until a TUF role\'s metadata expires (root and targets: index "*").',
            labels=("index", "role"),
        )
        report = self.trust().get("trust", {})
        for role in ("root", "targets"):
            if role in report:
                expiry.add_metric(("*", role), report[role]["seconds_left"])
        for index, roles in report.get("indexes", {}).items():
            for role in ("timestamp", "snapshot"):
                if role in roles:
                    expiry.add_metric((index, role), roles[role]["seconds_left"])
        return [expiry]

    def fact_families(self) -> list[Metric]:
        if self.facts is None:
            return []
        facts = self.facts()
        journal_lag = GaugeMetricFamily(
            "tilsit_journal_lag_serials",
            "The shared journal's newest serial minus the serial this host's tree has rendered.",
            labels=("host",),
        )
        journal_lag.add_metric((self.host,), max(0, facts.newest_serial - facts.rendered_serial))
        rendered = GaugeMetricFamily(
            "tilsit_rendered_serial",
            "The journal serial this host's tree has rendered.",
            labels=("host",),
        )
        rendered.add_metric((self.host,), facts.rendered_serial)
        mirror_lag = GaugeMetricFamily(
            "tilsit_mirror_lag_serials",
            "A mirror's upstream serial (at its last sync) minus the serial it has in place.",
            labels=("index",),
        )
        mirror_success = GaugeMetricFamily(
            "tilsit_mirror_last_success_timestamp_seconds",
            "When a mirror's last sync succeeded (Unix time; absent before the first).",
            labels=("index",),
        )
        for mirror in facts.mirrors:  # a deleted mirror is in no scrape after
            if mirror.upstream_serial is not None:
                synced = mirror.synced_serial or 0
                mirror_lag.add_metric((mirror.index,), max(0, mirror.upstream_serial - synced))
            if mirror.last_success is not None:
                mirror_success.add_metric((mirror.index,), mirror.last_success.timestamp())
        return [journal_lag, rendered, mirror_lag, mirror_success]

    def close(self) -> None:
        """At this worker's exit: its live gauges (if any) leave the merged scrape."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

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
        # Files, a few small queries and (with several workers) their counters' files.
        body = await anyio.to_thread.run_sync(generate_latest, self.scraped)
        await respond(send, 200, body, head=head, content_type=CONTENT_TYPE_LATEST.encode())
