"""Custom HTTP reason phrases on uvicorn ("400 File already exists").

twine prints the reason phrase of a failed upload without ``--verbose``, and
PyPI's phrases carry the cause. ASGI has no field for the phrase, so uvicorn
always sends the standard one, looked up by status code in a module table
(``STATUS_PHRASES`` for h11, ``STATUS_LINE`` for httptools). We wrap those
tables once with a mapping that, for a status given as :class:`ReasonStatus`
(an ``int`` carrying its phrase), returns that phrase; every other status
still gets the standard text. No per-request global state is touched, so
concurrent responses cannot see each other's phrase. If a uvicorn release
drops these tables, :func:`install` changes nothing and the standard phrase
is sent: the body still carries the message.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["ReasonStatus", "install"]

_SAFE = re.compile(r"[^\x20-\x7e]")


class ReasonStatus(int):
    """An HTTP status code with its own reason phrase."""

    reason: bytes

    def __new__(cls, status: int, reason: str) -> ReasonStatus:
        self = super().__new__(cls, status)
        # One line of printable ASCII: anything else could split the status line.
        self.reason = _SAFE.sub(" ", reason)[:200].encode("ascii")
        return self


class _PhraseTable(dict[int, bytes]):
    def __getitem__(self, status: int) -> bytes:
        if isinstance(status, ReasonStatus):
            return status.reason
        return super().__getitem__(status)


class _StatusLineTable(dict[int, bytes]):
    def __getitem__(self, status: int) -> bytes:
        if isinstance(status, ReasonStatus):
            return b"HTTP/1.1 %d %s\r\n" % (int(status), status.reason)
        return super().__getitem__(status)


def install() -> bool:
    """Wrap uvicorn's phrase tables; returns whether both protocol tables were found."""
    found = 0
    for module_name, attribute, table in (
        ("uvicorn.protocols.http.h11_impl", "STATUS_PHRASES", _PhraseTable),
        ("uvicorn.protocols.http.httptools_impl", "STATUS_LINE", _StatusLineTable),
    ):
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        current = getattr(module, attribute, None)
        if isinstance(current, dict):
            if not isinstance(current, table):
                setattr(module, attribute, table(current))
            found += 1
    return found == 2
