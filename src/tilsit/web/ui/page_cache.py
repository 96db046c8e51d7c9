"""Rendered parts of browsing pages, kept in memory by what they were rendered from.

A project page's expensive part (the README as HTML, the release history and the
files table) depends only on the project's state in its index, which the journal
moves: every change to a project moves its ``last_serial`` (a virtual index's
projects move with their members' changes and the cool-down's ticks; its policy
has a version of its own). So a part is kept under a key holding those serials and
is rendered again only when one moves; nothing is ever invalidated by hand. What
depends on the viewer (links for Owners, the CSRF token of the logout form) or on
the clock (when a mirror last fetched) is rendered around the kept part, per
request. Least recently used parts are dropped past ``max_entries``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["PageCache"]

V = TypeVar("V")


class PageCache(Generic[V]):
    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._parts: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            part = self._parts.get(key)
            if part is None:
                self.misses += 1
                return None
            self._parts.move_to_end(key)
            self.hits += 1
            return part

    def put(self, key: Hashable, part: V) -> None:
        with self._lock:
            self._parts[key] = part
            self._parts.move_to_end(key)
            while len(self._parts) > self.max_entries:
                self._parts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()

    def __len__(self) -> int:
        return len(self._parts)
