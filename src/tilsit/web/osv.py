"""``/osv/v1/``: the subset of the OSV API (https://google.github.io/osv.dev/api/) that
``pip-audit -s osv --osv-url`` and ``uv audit --service-url`` use, answered from the records
``tilsit vuln import`` stored, with no internet.

- ``POST /osv/v1/query``: ``{"package": {"name", "ecosystem": "PyPI"}, "version"}`` (or
  ``"package": {"purl": "pkg:pypi/<name>@<version>"}``); answers ``{"vulns": [<record>…]}``,
  or ``{}`` when none is known, as osv.dev does. Without a version: every record of the
  package.
- ``POST /osv/v1/querybatch``: ``{"queries": [<query>…]}`` (at most 1,000); answers
  ``{"results": [{"vulns": [{"id", "modified"}…]}…]}``, one result per query, in order.
- ``GET /osv/v1/vulns/<id>``: the stored record.

The data is public (what osv.dev publishes), so no access check applies. Only the PyPI
ecosystem is held: a query for another one, or by commit, is refused (400) rather than
answered with an empty list that would read as "no known vulnerabilities". Bodies are
capped at :data:`MAX_QUERY_BYTES`; a body that is not a query is a 400 that says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
from packaging.utils import InvalidName, canonicalize_name
from sqlalchemy import select

from tilsit.db.engine import Database
from tilsit.db.models import VulnRow
from tilsit.index.vuln_reads import known_vulns
from tilsit.spec.osv import ECOSYSTEM
from tilsit.web.asgi import Receive, Scope, Send, header, respond, text
from tilsit.web.bodies import CappedBody

__all__ = ["MAX_BATCH", "MAX_QUERY_BYTES", "InvalidQuery", "OsvRoutes"]

# A batch of 1,000 queries (osv.dev's own limit) is about 100 KiB.
MAX_QUERY_BYTES = 1024 * 1024
MAX_BATCH = 1000
_JSON = b"application/json"
_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


class InvalidQuery(ValueError):
    """A request body that is not an OSV query (the message says why)."""


def parse_query(query: object, where: str = "the query") -> tuple[str, str | None]:
    """(normalised project name, version or None) of one OSV query object."""
    if not isinstance(query, dict):
        raise InvalidQuery(f"{where} must be a JSON object")
    if "commit" in query:
        raise InvalidQuery(f"{where}: queries by commit are not supported; give a package")
    package = query.get("package")
    if not isinstance(package, dict):
        raise InvalidQuery(f'{where} needs a "package" object')
    version = query.get("version")
    if version is not None and not isinstance(version, str):
        raise InvalidQuery(f'{where}: "version" must be a string')
    purl = package.get("purl")
    if purl is not None:
        name, version = _from_purl(purl, version, where)
    else:
        given, ecosystem = package.get("name"), package.get("ecosystem")
        if not isinstance(given, str) or not isinstance(ecosystem, str):
            raise InvalidQuery(f'{where}: "package" needs a "name" and an "ecosystem" string')
        if ecosystem != ECOSYSTEM:
            raise InvalidQuery(
                f"{where}: this server holds records of the {ECOSYSTEM} ecosystem only,"
                f" not {ecosystem[:40]!r}"
            )
        name = given
    try:
        return canonicalize_name(name, validate=True), version or None
    except InvalidName:
        raise InvalidQuery(f"{where}: {name[:120]!r} is not a PyPI project name") from None


def _from_purl(purl: object, version: str | None, where: str) -> tuple[str, str | None]:
    if not isinstance(purl, str) or not purl.startswith("pkg:pypi/"):
        raise InvalidQuery(f'{where}: "purl" must be a pkg:pypi/ package URL')
    rest = purl[len("pkg:pypi/") :].split("?", 1)[0].split("#", 1)[0]
    name, _, purl_version = rest.partition("@")
    if purl_version and version is not None:
        raise InvalidQuery(f'{where}: give the version in "purl" or in "version", not both')
    return unquote(name), unquote(purl_version) or version


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidQuery(f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise InvalidQuery("the body is not JSON (nested too deeply)") from None


class OsvRoutes:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        """``rest``: the path after ``/osv/v1/``."""
        method = scope["method"]
        head = method == "HEAD"
        if rest in ("query", "querybatch"):
            if method != "POST":
                await _not_allowed(send, "POST")
                return
            body = await self._body(scope, receive, send)
            if body is None:
                return
            try:
                if rest == "query":
                    answer = await anyio.to_thread.run_sync(self._query, _decode(body))
                else:
                    answer = await anyio.to_thread.run_sync(self._batch, _decode(body))
            except InvalidQuery as exc:
                await text(send, 400, f"Bad Request: {exc}", _HEADERS)
                return
            await _json(send, answer)
            return
        if rest.startswith("vulns/") and "/" not in rest[len("vulns/") :]:
            if method not in ("GET", "HEAD"):
                await _not_allowed(send, "GET, HEAD")
                return
            ident = rest[len("vulns/") :]
            record = await anyio.to_thread.run_sync(self._record, ident)
            if record is None:
                await text(
                    send, 404, f"Not Found: no imported OSV record has the id {ident!r}", head=head
                )
                return
            await _json(send, record, head=head)
            return
        await text(send, 404, f"Not Found: {scope['path']}", head=head)

    def _query(self, body: object) -> dict[str, Any]:
        name, version = parse_query(body)
        with self.db.read() as session:
            ids = [
                v.id for v in known_vulns(session, name) if version is None or v.affects(version)
            ]
            if not ids:
                return {}  # osv.dev's answer for "none known"
            by_id: dict[str, Any] = dict(
                session.execute(select(VulnRow.id, VulnRow.record).where(VulnRow.id.in_(ids))).all()
            )
        return {"vulns": [by_id[i] for i in ids if i in by_id]}

    def _batch(self, body: object) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("queries"), list):
            raise InvalidQuery('the body must be {"queries": [...]}')
        queries = body["queries"]
        if len(queries) > MAX_BATCH:
            raise InvalidQuery(f"a batch may have at most {MAX_BATCH} queries, not {len(queries)}")
        parsed = [parse_query(q, f"query {i}") for i, q in enumerate(queries)]
        results: list[dict[str, Any]] = []
        with self.db.read() as session:
            for name, version in parsed:
                found = [
                    {"id": v.id, "modified": v.modified_at}
                    for v in known_vulns(session, name)
                    if version is None or v.affects(version)
                ]
                results.append({"vulns": found} if found else {})
        return {"results": results}

    def _record(self, ident: str) -> Mapping[str, Any] | None:
        with self.db.read() as session:
            row = session.get(VulnRow, ident)
            return None if row is None else row.record

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request body, at most :data:`MAX_QUERY_BYTES`; None once answered (413)."""
        length = header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > MAX_QUERY_BYTES:
            await text(
                send,
                413,
                f"Content Too Large: an OSV query may have at most {MAX_QUERY_BYTES} bytes",
                [(b"connection", b"close")],
            )
            return None
        capped = CappedBody(receive, send, MAX_QUERY_BYTES, "an OSV query")
        chunks: list[bytes] = []
        while True:
            message = await capped.receive()
            if message["type"] != "http.request":
                return None  # the client left, or the cap answered 413
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _json(send: Send, doc: object, *, head: bool = False) -> None:
    body = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()
    await respond(send, 200, body, list(_HEADERS), head=head, content_type=_JSON)


async def _not_allowed(send: Send, allow: str) -> None:
    await text(send, 405, f"Method Not Allowed: use {allow}", [(b"allow", allow.encode())])
