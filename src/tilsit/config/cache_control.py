"""``Cache-Control`` by kind of document, one value for tilsit and for nginx (docs/cdn.md).

Each kind is a setting ``cache_control_<kind>`` (or a key of the ``[cache_control]``
table of the settings file). ``simple`` and ``json`` left empty follow
``page_max_age``. A value is checked once, when settings load: it goes into a header
and into the nginx configuration between quotes, so it holds only letters, digits,
``=``, ``,``, ``-`` and spaces; and a value that lets a cache keep the response
(``max-age``, ``s-maxage``) says ``public``, which a private index's responses turn
into ``private`` (:mod:`tilsit.web.gate`): without it, a shared cache could keep them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KINDS", "CacheControl", "InvalidCacheControl", "check_cache_control"]

IMMUTABLE = "max-age=31536000, immutable, public"
# kind -> default ("" follows page_max_age)
KINDS: dict[str, str] = {
    "simple": "",
    "json": "",
    "files": IMMUTABLE,
    "metadata": IMMUTABLE,
    "tuf_timestamp": "no-cache",
    "tuf_other": IMMUTABLE,
}
_SAFE = re.compile(r"^[A-Za-z0-9=, -]{1,200}$")


class InvalidCacheControl(ValueError):
    """A Cache-Control setting with a character a header or nginx cannot take, or one
    that lets a cache keep a response without saying ``public``."""


def check_cache_control(value: str) -> str:
    if value == "":
        return value
    if not _SAFE.match(value):
        raise InvalidCacheControl(
            f"{value!r}: only letters, digits, '=', ',', '-' and spaces (at most 200)"
        )
    words = {w.strip().split("=")[0].lower() for w in value.split(",")}
    if words & {"max-age", "s-maxage"} and "public" not in words:
        raise InvalidCacheControl(
            f"{value!r}: a value with max-age must say public (private indexes turn it"
            " into private, so no shared cache keeps them)"
        )
    return value


@dataclass(frozen=True)
class CacheControl:
    simple: str
    json: str
    files: str
    metadata: str
    tuf_timestamp: str
    tuf_other: str

    @classmethod
    def of(cls, page_max_age: int, values: dict[str, str] | None = None) -> CacheControl:
        pages = f"max-age={page_max_age}, public"
        chosen = {kind: (values or {}).get(kind) or default for kind, default in KINDS.items()}
        return cls(**{kind: value or pages for kind, value in chosen.items()})
