"""What can go wrong talking to an upstream index.

Every failure of the upstream client surfaces as one of these, never as an
``httpx`` (or ``ssl``, ``OSError``) exception: the client translates at its
boundary, so callers (sync, proxy) decide on retries by class alone::

    UpstreamError                  anything the upstream did wrong or could not do
    ├── UpstreamUnavailable        connect errors, timeouts, resets, truncated bodies,
    │                              5xx and 429: worth retrying later
    ├── UpstreamNotFound           404 / 410: the page or file does not exist (now)
    └── UpstreamProtocolError      the upstream answered, but not as an index should
        │                          (401/403, other statuses, redirect loops, bad encodings)
        ├── InvalidUpstreamPage    a page that is not a readable simple-API document
        ├── UpstreamTooLarge       a body past its cap (a page's setting, a file's size), or
        │                          compressed past any sane ratio: not read further
        └── RedirectRefused        a file redirected to an origin the index does not trust

A page redirected to another origin is :class:`UpstreamNotFound` (the upstream
does not have it here), never followed.
"""

from __future__ import annotations

__all__ = [
    "InvalidUpstreamPage",
    "RedirectRefused",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamProtocolError",
    "UpstreamTooLarge",
    "UpstreamUnavailable",
]


class UpstreamError(Exception):
    """The base of every upstream failure; ``url`` is what was asked for."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.message = message
        self.status = status


class UpstreamUnavailable(UpstreamError):
    """The upstream could not answer now (network, timeout, 5xx, 429)."""


class UpstreamNotFound(UpstreamError):
    """The upstream says the page or file does not exist (404, 410)."""


class UpstreamProtocolError(UpstreamError):
    """The upstream answered in a way an index should not."""


class InvalidUpstreamPage(UpstreamProtocolError):
    """A page that cannot be read as a PEP 503 / PEP 691 document."""


class UpstreamTooLarge(UpstreamProtocolError):
    """A body past its cap, or decompressing past any sane ratio; reading stopped there."""


class RedirectRefused(UpstreamProtocolError):
    """A file request redirected to an origin that the index is not configured to trust."""
