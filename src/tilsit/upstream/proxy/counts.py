"""Proxy hits and misses, counted for ``/_/metrics`` (:mod:`tilsit.web.metrics` shows them).

The counter lives here, beside the code that decides, because the layers
(docs/architecture.md) let ``web`` import ``upstream`` and not the reverse.

A *miss* is a request that made this process ask an upstream (a page fetched or
revalidated, a file fetched); a *hit* is one answered without that: from a page
fetched within its TTL, a remembered 404 or failure, a blob already stored, or
a fetch another request had started (coalesced: the upstream is asked once for
all of them). So the misses count the upstream's load, and ``hit / (hit + miss)``
is the share of proxy requests it was spared.

Labels: ``index`` (the proxy index; for a ``/packages/`` file, the one whose
upstream is asked first), ``what`` (``page``, ``file``, ``metadata``) and
``result`` (``hit``, ``miss``). The index name is a bounded label: only an
administrator makes indexes (``tilsit index create``, never a request), so the
series are at most six per configured proxy index. Never the project or the
path, which clients choose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import wraps
from typing import TypeVar

from prometheus_client import Counter

from tilsit.upstream.proxy.files import ProxyFile
from tilsit.upstream.proxy.index import ProxyIndex

__all__ = ["PROXY_REQUESTS", "count_file", "counted_page", "upstream_asked"]

# Registered by each /_/metrics (web.metrics), not in the process-wide default registry.
PROXY_REQUESTS = Counter(
    "tilsit_proxy_requests",
    "Proxy page and file requests: answered without asking the upstream (hit) or not (miss).",
    ("index", "what", "result"),
    registry=None,
)

# Whether the page request running in this context asked its upstream.
_ASKED: ContextVar[bool] = ContextVar("tilsit_proxy_asked", default=False)

S = TypeVar("S")
T = TypeVar("T")


def count_file(target: ProxyFile, fetched: bool) -> None:
    """One request for ``target``: ``fetched`` if it started a fetch from the upstream."""
    what = "metadata" if target.metadata else "file"
    PROXY_REQUESTS.labels(target.index.name, what, "miss" if fetched else "hit").inc()


def upstream_asked() -> None:
    """Called where a page request asks its upstream: that request is a miss."""
    _ASKED.set(True)


def counted_page(
    page: Callable[[S, ProxyIndex, str], Awaitable[T]],
) -> Callable[[S, ProxyIndex, str], Awaitable[T]]:
    """``Proxy.page``, counting each call a hit or (after :func:`upstream_asked`) a miss."""

    @wraps(page)
    async def counted(self: S, index: ProxyIndex, name: str) -> T:
        token = _ASKED.set(False)
        try:
            return await page(self, index, name)
        finally:
            result = "miss" if _ASKED.get() else "hit"
            _ASKED.reset(token)
            PROXY_REQUESTS.labels(index.name, "page", result).inc()

    return counted
