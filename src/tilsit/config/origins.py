"""Origins (``scheme://host[:port]``) named in settings, and the origin of a URL.

The upstream client compares origins when it follows a redirect (a page's
redirect stays on its origin; a file's may go to an origin the operator named in
``upstream_file_origins``). The syntax lives with the settings so that a
mistyped origin stops start-up.
"""

from __future__ import annotations

import re

import httpx

__all__ = ["Origin", "origin_of", "parse_origins"]

Origin = tuple[str, str, int]
_ORIGIN = re.compile(r"^https?://[^/?#@\s]+$")


def origin_of(url: str | httpx.URL) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme.lower(), parsed.host.lower(), port


def parse_origins(text: str) -> frozenset[Origin]:
    """Origins named in a setting: ``scheme://host[:port]`` separated by commas or spaces."""
    origins: set[Origin] = set()
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        if not _ORIGIN.match(word.rstrip("/")):
            raise ValueError(f"{word!r} is not an origin: write scheme://host[:port], with no path")
        origins.add(origin_of(word.rstrip("/")))
    return frozenset(origins)
