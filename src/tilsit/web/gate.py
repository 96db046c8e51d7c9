"""The read path's access check on private indexes.

A private index is marked in the tree (``<index>/.private``, written by the
renderer before it moves any page), so the check costs one ``stat`` on a public
index and nothing more. On a private one the request must carry an API token:
HTTP Basic with the token as the password (any user name, ``__token__``
included) or ``Bearer``. Account passwords are refused: they would skip the
second factor.

Decisions are cached in memory per (token hash, index) for :data:`CACHE_SECONDS`,
so a client fetching many pages and files costs one database query per half
minute, not one per request. The price is that revoking a token, disabling a
user or removing a permission takes effect on the read path within that bound.

Answers: 401 with ``WWW-Authenticate: Basic realm="tilsit <index>"`` without
credentials, 403 with the reason for credentials that do not allow reading.
Responses of a private index are marked ``Cache-Control: private`` so that no
shared cache keeps them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from tilsit.auth.tokens import credentials_from_header
from tilsit.db.engine import Database
from tilsit.index.access import ReadDecision, read_decision
from tilsit.render.tree import PRIVATE_MARKER
from tilsit.web.asgi import Message, Scope, Send, header, text

__all__ = ["CACHE_SECONDS", "ReadGate", "challenge"]

CACHE_SECONDS = 30.0
_CACHE_ENTRIES = 10_000
_UNAUTHORIZED = (
    "Unauthorized: index {index!r} is private. Send an API token as the password of"
    " HTTP Basic authentication (user name __token__) or as a Bearer token. Account"
    " passwords are not accepted here, as they would bypass two-factor authentication."
)


def challenge(index: str) -> bytes:
    return f'Basic realm="tilsit {index}"'.encode()


class ReadGate:
    def __init__(
        self, db: Database, tree_root: Path, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.root = str(tree_root)
        self.clock = clock
        self._decisions: dict[tuple[str, str], tuple[float, ReadDecision]] = {}

    def is_private(self, index: str) -> bool:
        return os.path.exists(os.path.join(self.root, index, PRIVATE_MARKER))

    async def decide(self, authorization: str | None, index: str) -> tuple[int, str]:
        """(200, "") when the request may read ``index``, else (401 or 403, the reason)."""
        if not self.is_private(index):
            return 200, ""
        secret = credentials_from_header(authorization)
        if not secret:
            # A user name without a password (pip sends one from the URL before it asks
            # its keyring) is no credential: challenge again rather than refuse.
            return 401, _UNAUTHORIZED.format(index=index)
        key = (hashlib.sha256(secret.encode()).hexdigest(), index)
        now = self.clock()
        cached = self._decisions.get(key)
        if cached is None or cached[0] <= now:
            decision = await anyio.to_thread.run_sync(self._lookup, secret, index)
            if len(self._decisions) >= _CACHE_ENTRIES:
                # Unknown tokens sent in bulk must not grow memory without bound.
                self._decisions.clear()
            self._decisions[key] = (now + CACHE_SECONDS, decision)
        else:
            decision = cached[1]
        if decision.allowed:
            return 200, ""
        return 403, f"Forbidden: {decision.reason}"

    def _lookup(self, secret: str, index: str) -> ReadDecision:
        with self.db.read() as session:
            return read_decision(session, secret, index)

    async def admit(self, scope: Scope, send: Send, index: str) -> Send | None:
        """The ``send`` to answer with if the request may read ``index``; None once refused.

        On a private index the returned ``send`` turns ``public`` caching into ``private``.
        """
        if not self.is_private(index):
            return send
        status, reason = await self.decide(header(scope, b"authorization"), index)
        head = scope["method"] == "HEAD"
        if status == 401:
            await text(send, 401, reason, [(b"www-authenticate", challenge(index))], head=head)
            return None
        if status == 403:
            await text(send, 403, reason, [(b"cache-control", b"no-store")], head=head)
            return None

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        (k, v.replace(b"public", b"private") if k == b"cache-control" else v)
                        for k, v in message.get("headers", [])
                    ],
                }
            await send(message)

        return send_private
