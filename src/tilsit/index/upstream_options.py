"""The upstream settings of mirror and proxy indexes, checked by one function.

``index create`` and ``index set`` both pass the whole resulting options through
:func:`check_upstream_options`, so a setting that one of them refuses the other
refuses too, with the same words. The settings (``IndexRow.options``):

- ``upstream``: the simple index URL (http or https), kept with one trailing slash;
- ``auth``: ``{"username", "password"}`` for the upstream (stored in the database);
- ``ca_bundle``: an absolute path to a PEM bundle the upstream's certificate chains to;
- ``ttl`` (proxy): seconds a fetched page is served before revalidation; also its
  pages' ``Cache-Control: max-age``;
- ``interval`` (mirror): seconds between scheduled syncs inside ``tilsit serve``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tilsit.index import errors

__all__ = [
    "InvalidUpstreamOption",
    "check_upstream_options",
    "parse_duration",
    "public_url",
]

_URL = re.compile(r"^https?://[^/\s]+")
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Past a year a schedule or TTL is a typo, not a choice.
_MAX_SECONDS = 366 * 86400


class InvalidUpstreamOption(errors.InvalidUpload):
    """A mirror's or proxy's upstream setting that cannot work (named in the message)."""


def parse_duration(text: str, setting: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``1h`` or ``1d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidUpstreamOption(
            f"{setting} {text!r} is not a duration: give seconds (3600) or 90s, 15m, 1h, 1d"
        )
    return int(match[1]) * _UNITS[match[2]]


def public_url(url: str) -> str:
    """``url`` without the user name and password it may carry (for listings and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def _seconds(value: object, setting: str, *, zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUpstreamOption(f"{setting} must be a whole number of seconds, not {value!r}")
    if value < (0 if zero else 1) or value > _MAX_SECONDS:
        least = "0" if zero else "1"
        raise InvalidUpstreamOption(
            f"{setting} {value} is out of range: give {least} to {_MAX_SECONDS} seconds"
        )
    return value


def _ca_bundle(value: object) -> str:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise InvalidUpstreamOption(f"CA bundle {str(value)!r} is not a file: give a PEM bundle")
    try:
        # What the upstream client will do with it, so a bad bundle fails here, not at sync.
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise InvalidUpstreamOption(
            f"CA bundle {str(value)!r} holds no usable PEM certificate ({exc})"
        ) from exc
    return str(path.resolve())


def check_upstream_options(kind: str, options: Mapping[str, object]) -> dict[str, object]:
    """``options`` checked and normalised for an index of ``kind``; raise on the first fault.

    A hosted index takes none of these settings.
    """
    checked = dict(options)
    if kind in ("hosted", "virtual"):
        given = sorted(
            k for k in ("upstream", "auth", "ca_bundle", "ttl", "interval") if k in checked
        )
        if given:
            raise InvalidUpstreamOption(
                f"a {kind} index has no upstream: {', '.join(given)} apply to mirror"
                " and proxy indexes only"
            )
        return checked
    upstream = str(checked.get("upstream", ""))
    if not _URL.match(upstream):
        raise InvalidUpstreamOption(
            f"A {kind} index needs an upstream http(s) URL, not {upstream!r}"
        )
    checked["upstream"] = upstream.rstrip("/") + "/"
    auth = checked.get("auth")
    if auth is not None:
        if (
            not isinstance(auth, Mapping)
            or not isinstance(auth.get("username"), str)
            or not isinstance(auth.get("password"), str)
        ):
            raise InvalidUpstreamOption("upstream credentials need a user name and a password")
        if not auth["username"] or any(c in auth["username"] for c in ":\r\n"):
            raise InvalidUpstreamOption(
                "upstream user name must be non-empty, without ':' or line breaks"
            )
        checked["auth"] = {"username": auth["username"], "password": auth["password"]}
    if checked.get("ca_bundle") is not None:
        checked["ca_bundle"] = _ca_bundle(checked["ca_bundle"])
    if "ttl" in checked:
        if kind != "proxy":
            raise InvalidUpstreamOption(f"ttl applies to proxy indexes, not to a {kind} index")
        checked["ttl"] = _seconds(checked["ttl"], "ttl", zero=True)
    if "interval" in checked:
        if kind != "mirror":
            raise InvalidUpstreamOption(
                f"interval applies to mirror indexes, not to a {kind} index"
            )
        checked["interval"] = _seconds(checked["interval"], "interval", zero=False)
    return checked
