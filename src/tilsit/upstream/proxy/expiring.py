"""A bounded map whose entries lapse: the proxy's per-process memory of pages and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Expiring"]

V = TypeVar("V")
# Bounds on the per-process memory; past them expired entries are dropped.
_MAX_REMEMBERED = 100_000


class Expiring(Generic[V]):
    """A bounded map whose entries lapse after the seconds each was put for."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[tuple[int, str], tuple[float, V]] = {}

    def get(self, key: tuple[int, str]) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[int, str], value: V, seconds: float) -> None:
        if seconds <= 0:
            self._entries.pop(key, None)
            return
        now = self._clock()
        if len(self._entries) >= _MAX_REMEMBERED:
            for old in [k for k, (until, _) in self._entries.items() if until <= now]:
                del self._entries[old]
            if len(self._entries) >= _MAX_REMEMBERED:
                self._entries.clear()
        self._entries[key] = (now + seconds, value)

    def pop(self, key: tuple[int, str]) -> None:
        self._entries.pop(key, None)
