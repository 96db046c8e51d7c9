"""Rate-limit settings: ``count/window`` pairs such as ``"5/5m,20/1h"``.

The syntax lives with the settings, so a mistyped limit stops start-up
(the settings reader checks it) instead of the first login;
:mod:`tilsit.auth.ratelimit` counts attempts against the parsed limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["InvalidLimit", "Limit", "parse_limits"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class InvalidLimit(ValueError):
    """A limit setting that is not ``count/window`` (``10/5m``, ``20/1h``)."""


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    def describe(self) -> str:
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % size == 0:
                amount = self.seconds // size
                return f"{amount} {unit}s" if amount != 1 else unit
        return f"{self.seconds} seconds"


def parse_limits(text: str) -> tuple[Limit, ...]:
    """``"5/5m,20/1h"`` -> two limits; an empty string means no limit."""
    limits = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)\s*/\s*(\d*)\s*([smhd])", part)
        if not match or int(match[1]) < 1:
            raise InvalidLimit(f"rate limit {part!r} is not count/window, such as 10/5m or 20/1h")
        limits.append(Limit(int(match[1]), int(match[2] or 1) * _UNITS[match[3]]))
    return tuple(limits)
