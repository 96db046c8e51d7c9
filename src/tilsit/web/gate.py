"""The read path's access check on private indexes.

A private index is marked in the tree (``<index>/.private``, written by the
renderer before it moves any page), so the check costs one ``stat`` on a public
index and nothing more. On a private one the request must carry an API token:
HTTP Basic with the token as the password (any user name, ``__token__``
included) or ``Bearer``. Account passwords are refused: they would skip the
second factor.

The decision is per path, not per index (see :mod:`tilsit.index.access`): the
path names what is read (:func:`read_target`). A project's pages and legacy JSON
carry its name; a file is its project's, as the files table says; the project
list, TUF metadata and everything else are the whole index's. So a token that
opens one project (its user's role, or the token's own limit) opens that
project's pages and files and nothing else.

What a token may read of an index (:class:`ReadScope`) is cached in memory per
(token hash, index) for :data:`CACHE_SECONDS`, so a client fetching many pages
and files costs one database query per half minute, not one per request. The
price is that revoking a token, disabling a user or removing a permission or
role takes effect on the read path within that bound. Which project a file
belongs to never changes, so that is cached without expiry.

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import anyio

from tilsit.auth.tokens import credentials_from_header
from tilsit.db.engine import Database
from tilsit.index.access import ReadScope, file_project, read_scope
from tilsit.spec.names import normalize
from tilsit.store.tree import PRIVATE_MARKER
from tilsit.trust.layout import HASHED_NAME, is_hashed
from tilsit.web.asgi import Message, Scope, Send, header, text

__all__ = ["CACHE_SECONDS", "ReadGate", "ReadTarget", "challenge", "original_path", "read_target"]

CACHE_SECONDS = 30.0
_CACHE_ENTRIES = 10_000
_FILE_ENTRIES = 100_000
_AREAS = ("simple", "pypi", "legacy", "packages", "tuf")
_UNAUTHORIZED = (
    "Unauthorized: index {index!r} is private. Send an API token as the password of"
    " HTTP Basic authentication (user name __token__) or as a Bearer token. Account"
    " passwords are not accepted here, as they would bypass two-factor authentication."
)


def challenge(index: str) -> bytes:
    return f'Basic realm="tilsit {index}"'.encode()


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """What a read path names: a project (its pages, legacy JSON), a file of the index
    (``filename``, its project read from the files table), or neither (the whole index)."""

    project: str | None = None
    filename: str | None = None


def read_target(path: str, index: str) -> ReadTarget:
    """What ``path`` (decoded, as routed) reads of ``index``.

    ``path`` is ``/<index>/<area>/…``, or ``/<area>/…`` for the default index's root paths.
    Whatever is not recognised as a project's or a file's is the whole index's, the
    strictest answer.
    """
    parts = path.split("/")[1:]
    if "." in parts or ".." in parts:
        # Resolved by no route of tilsit, and by nginx before it asks (original_path):
        # such a path cannot be judged as any one project's.
        return ReadTarget()
    if len(parts) > 1 and parts[0] == index and parts[1] in _AREAS:
        parts = parts[1:]
    area, rest = (parts[0], parts[1:]) if parts else ("", [])
    if area == "legacy" and rest[:1] == ["+simple"]:  # hatch's page below its upload URL
        area, rest = "simple", rest[1:]
    if area == "simple":
        # [""]: the list; ["<sha256>.index.html"]: the list by hash; ["Name"]: a redirect;
        # ["name", ""] or ["name", "<sha256>.index.html"]: the project's page.
        if (len(rest) >= 2 and rest[0]) or (len(rest) == 1 and rest[0] and not is_hashed(rest[0])):
            return ReadTarget(project=normalize(rest[0]))
        return ReadTarget()
    if area == "pypi" and rest and rest[0]:
        return ReadTarget(project=normalize(rest[0]))
    if area == "packages" and len(rest) == 4 and rest[3]:
        name = rest[3].removesuffix(".metadata")
        return ReadTarget(filename=name)
    return ReadTarget()


def original_path(raw: str | None) -> str | None:
    """The path a proxy in front (nginx's ``auth_request``) says it is about to serve.

    ``raw`` is the request target as the client sent it (nginx's ``$request_uri``): it is
    decoded and its dot segments and repeated slashes resolved as nginx resolves them
    before it picks a file, so that ``/i/simple/mine/../other/`` is judged as
    ``/i/simple/other/``. None when there is none, or it climbs above the root (nginx
    refuses those), which leaves the strictest decision.
    """
    if not raw:
        return None
    try:
        decoded = unquote(raw.split("?", 1)[0].split("#", 1)[0], errors="strict")
    except UnicodeDecodeError:
        return None
    if not decoded.startswith("/"):
        return None
    segments: list[str] = []
    pieces = decoded.split("/")[1:]
    for position, piece in enumerate(pieces):
        last = position == len(pieces) - 1
        if piece == "..":
            if not segments:
                return None
            segments.pop()
            if last:
                segments.append("")
        elif piece in (".", ""):
            if last:
                segments.append("")
        else:
            segments.append(piece)
    return "/" + "/".join(segments)


class ReadGate:
    def __init__(
        self,
        db: Database,
        tree_root: Path,
        clock: Callable[[], float] = time.monotonic,
        *,
        default_index: str = "main",
    ) -> None:
        self.db = db
        self.root = str(tree_root)
        self.clock = clock
        self.default_index = default_index
        self._scopes: dict[tuple[str, str], tuple[float, ReadScope]] = {}
        self._file_projects: dict[tuple[str, str], str] = {}

    def is_private(self, index: str) -> bool:
        return os.path.exists(os.path.join(self.root, index, PRIVATE_MARKER))

    async def decide(
        self, authorization: str | None, index: str, path: str | None = None
    ) -> tuple[int, str]:
        """(200, "") when the request may read ``path`` of ``index`` (None: the whole
        index), else (401 or 403, the reason)."""
        if not self.is_private(index):
            return 200, ""
        secret = credentials_from_header(authorization)
        if not secret:
            # A user name without a password (pip sends one from the URL before it asks
            # its keyring) is no credential: challenge again rather than refuse.
            return 401, _UNAUTHORIZED.format(index=index)
        scope = await self._scope(secret, index)
        target = read_target(path, index) if path is not None else ReadTarget()
        if target.filename is not None and not scope.whole_index:
            project = await self._file_project(index, target.filename) if scope.projects else None
            allowed = project is not None and scope.allows(project)
        else:
            allowed = scope.allows(target.project)
        if allowed:
            return 200, ""
        return 403, f"Forbidden: {scope.reason}"

    async def _scope(self, secret: str, index: str) -> ReadScope:
        key = (hashlib.sha256(secret.encode()).hexdigest(), index)
        now = self.clock()
        cached = self._scopes.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        scope = await anyio.to_thread.run_sync(self._lookup, secret, index)
        if len(self._scopes) >= _CACHE_ENTRIES:
            # Unknown tokens sent in bulk must not grow memory without bound.
            self._scopes.clear()
        self._scopes[key] = (now + CACHE_SECONDS, scope)
        return scope

    def _lookup(self, secret: str, index: str) -> ReadScope:
        with self.db.read() as session:
            return read_scope(session, secret, index, self.default_index)

    async def _file_project(self, index: str, filename: str) -> str | None:
        # A TUF client's <sha256>.<filename> is the same file as <filename>.
        names = [filename[65:], filename] if HASHED_NAME.match(filename) else [filename]
        for name in names:
            if (known := self._file_projects.get((index, name))) is not None:
                return known
            project = await anyio.to_thread.run_sync(self._lookup_file, index, name)
            if project is not None:
                if len(self._file_projects) >= _FILE_ENTRIES:
                    self._file_projects.clear()
                self._file_projects[(index, name)] = project
                return project
        return None

    def _lookup_file(self, index: str, filename: str) -> str | None:
        with self.db.read() as session:
            return file_project(session, index, filename)

    async def admit(self, scope: Scope, send: Send, index: str) -> Send | None:
        """The ``send`` to answer with if the request may read its path of ``index``; None
        once refused.

        On a private index the returned ``send`` turns ``public`` caching into ``private``.
        """
        if not self.is_private(index):
            return send
        status, reason = await self.decide(header(scope, b"authorization"), index, scope["path"])
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
