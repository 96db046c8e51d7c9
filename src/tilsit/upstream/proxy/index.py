"""What the proxy needs of a ``proxy`` index row, and what its options default to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tilsit.db.models import IndexRow
from tilsit.upstream.errors import UpstreamError

__all__ = ["DEFAULT_NOT_FOUND_TTL", "DEFAULT_TIMEOUT", "DEFAULT_TTL", "ProxyIndex", "timed_out"]

DEFAULT_TTL = 600.0
DEFAULT_NOT_FOUND_TTL = 60.0
# A proxy answers clients that wait (pip's default timeout is 15 s): an upstream
# that does not answer within this is treated as down and the cached copy served.
DEFAULT_TIMEOUT = 10.0


def timed_out(error: UpstreamError) -> bool:
    """Whether the upstream failed by not answering in time (a 504, not a 502)."""
    return isinstance(error.__cause__, httpx.TimeoutException)


@dataclass(frozen=True, slots=True)
class ProxyIndex:
    """What the proxy needs of a ``proxy`` index row, detached from any session."""

    id: int
    name: str
    options: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: IndexRow) -> ProxyIndex:
        return cls(row.id, row.name, dict(row.options or {}))

    @property
    def upstream(self) -> str:
        return str(self.options["upstream"])

    @property
    def ttl(self) -> float:
        return float(self.options.get("ttl", DEFAULT_TTL))

    @property
    def not_found_ttl(self) -> float:
        return float(self.options.get("not_found_ttl", DEFAULT_NOT_FOUND_TTL))
