"""The base of the suite's small HTTP servers: upstreams, issuers, purge sinks."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing and sends each small write at once.

    ``BaseHTTPRequestHandler`` writes the headers and the body separately. On a
    keep-alive connection Nagle's algorithm holds the second write until the client
    acknowledges the first, and Linux delays that acknowledgement by 40 ms: a sync
    that reads a thousand TUF bins from one of these servers spent 45 s waiting.
    """

    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return
