"""``POST /pypi`` and ``POST /<index>/pypi``: the read-only XML-RPC that older mirror clients
speak (bandersnatch 6 asks ``list_packages_with_serial`` for a first run and
``changelog_since_serial`` after it).

Three methods and nothing else, each a function named in :data:`METHODS`: no dispatcher looks
a name up on an object, so no call can reach anything else. The call is decoded by the
standard library's XML-RPC unmarshaller (what ``xmlrpc.client.loads`` uses) and the answer
encoded by ``xmlrpc.client.dumps``. Its expat parser, left to itself, expands the entities a
DOCTYPE declares (``loads`` turns a 200-byte "billion laughs" body into kilobytes, as far as
expat's amplification limit lets it), so here a DOCTYPE is refused before any is declared:
an XML-RPC call never needs one. The body is read under :data:`MAX_CALL_BYTES`.

Answers: the method's result, or an XML-RPC fault (HTTP 200, as the protocol has it) for an
unknown method (-32601) or wrong parameters (-32602); HTTP 400 with the reason for a body that
is not an XML-RPC call, 413 past the size cap. A private index answers as its JSON API does
(:mod:`tilsit.web.gate`): 401 without a token, 403 when the token may not read what the
method reads (the whole index, or for ``package_releases`` that project).
"""

from __future__ import annotations

import json
import os
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.tokens import credentials_from_header
from tilsit.db.engine import Database
from tilsit.db.models import IndexRow
from tilsit.index.feed import changes_since, choose_versions, project_serials, release_versions
from tilsit.spec.names import is_valid_name, normalize
from tilsit.web.asgi import Receive, Scope, Send, header, respond, text
from tilsit.web.bodies import CappedBody
from tilsit.web.gate import ReadGate, challenge

__all__ = ["MAX_CALL_BYTES", "METHODS", "InvalidCall", "XmlRpcRoute", "parse_call"]

# A call of these methods is a few hundred bytes; the cap only has to leave room for that.
MAX_CALL_BYTES = 64 * 1024
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
_XML = b"text/xml; charset=utf-8"
# A project's legacy JSON read for package_releases on a virtual index: bounded.
_LEGACY_MAX = 64 * 1024 * 1024


class InvalidCall(ValueError):
    """A request body that is not an XML-RPC method call (the reason says why)."""


class _Refused(Exception):
    """Raised from inside the parser to stop at a construct a call may not use."""


def parse_call(body: bytes) -> tuple[str, tuple[Any, ...]]:
    """(method name, parameters) of an XML-RPC ``<methodCall>``; :class:`InvalidCall` else."""
    unmarshaller = xmlrpc.client.Unmarshaller()
    parser = expat.ParserCreate(None, None)
    elements: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if not elements and tag != "methodCall":
            raise _Refused(f"the document is <{tag}>, not an XML-RPC <methodCall>")
        elements.append(tag)
        unmarshaller.start(tag, attrs)

    def doctype(*_: object) -> None:
        raise _Refused("a DOCTYPE is not accepted in an XML-RPC call")

    parser.StartElementHandler = start
    parser.EndElementHandler = unmarshaller.end
    parser.CharacterDataHandler = unmarshaller.data
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.buffer_text = True
    # As ExpatParser does: no encoding to decode with, as expat hands over str already.
    unmarshaller.xml(None, None)  # type: ignore[arg-type]  # typeshed says str; None is meant
    try:
        parser.Parse(body, True)
        name = unmarshaller.getmethodname()
        if name is None:
            raise InvalidCall("the call has no <methodName>")
        # <params> may be left out of a call without parameters.
        params = unmarshaller.close() if "params" in elements else ()
    except _Refused as exc:
        raise InvalidCall(str(exc)) from None
    except expat.ExpatError as exc:
        raise InvalidCall(f"the body is not well-formed XML: {exc}") from None
    except (ValueError, TypeError, OverflowError, xmlrpc.client.Error) as exc:
        # A value the unmarshaller cannot read (<int>x</int>, bad base64), a fault, or
        # an unfinished structure.
        raise InvalidCall(f"the body is not a valid XML-RPC call ({exc!r})") from None
    return name, tuple(params)


@dataclass(frozen=True, slots=True)
class Method:
    """One callable method: its parameters' types (and how many may be left out), what
    it reads (for the access check), and the function that answers it."""

    params: tuple[type, ...]
    optional: int
    reads: Callable[[str, tuple[Any, ...]], str]
    answer: Callable[[Session, IndexRow, tuple[Any, ...]], Any]

    def check(self, args: tuple[Any, ...]) -> str | None:
        """What is wrong with ``args``, or None."""
        if not len(self.params) - self.optional <= len(args) <= len(self.params):
            return f"takes {len(self.params) - self.optional} to {len(self.params)} parameters"
        for position, (arg, kind) in enumerate(zip(args, self.params, strict=False), 1):
            # bool is an int in Python, not in XML-RPC.
            if not isinstance(arg, kind) or (kind is int and isinstance(arg, bool)):
                return f"parameter {position} must be {_TYPE_NAMES[kind]}"
        return None


_TYPE_NAMES = {int: "an <int>", str: "a <string>", bool: "a <boolean>"}


def _whole_index(index: str, _: tuple[Any, ...]) -> str:
    return f"/{index}/pypi/"


def _project(index: str, args: tuple[Any, ...]) -> str:
    name = args[0]
    if not name or "/" in name or name in (".", ".."):
        return _whole_index(index, args)  # names no one project: the strictest check
    return f"/{index}/pypi/{name}/json"


def _changelog(session: Session, index: IndexRow, args: tuple[Any, ...]) -> Any:
    return [
        [c.name, c.version, c.timestamp, c.action, c.serial]
        for c in changes_since(session, index, args[0])
    ]


def _releases(session: Session, index: IndexRow, args: tuple[Any, ...]) -> Any:
    every = bool(args[1]) if len(args) > 1 else False
    return release_versions(session, index, args[0], every=every) or []


METHODS: dict[str, Method] = {
    "list_packages_with_serial": Method(
        (), 0, _whole_index, lambda session, index, _: project_serials(session, index)
    ),
    "changelog_since_serial": Method((int,), 0, _whole_index, _changelog),
    "package_releases": Method((str, bool), 1, _project, _releases),
}


def _fault(code: int, message: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode()


class XmlRpcRoute:
    def __init__(self, db: Database, gate: ReadGate) -> None:
        self.db = db
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send, index: str) -> None:
        authorization = header(scope, b"authorization")
        if self.gate.is_private(index) and not credentials_from_header(authorization):
            status, reason = await self.gate.decide(authorization, index)
            await text(send, status, reason, [(b"www-authenticate", challenge(index))])
            return
        body = await self._body(scope, receive, send)
        if body is None:
            return
        try:
            name, args = parse_call(body)
        except InvalidCall as exc:
            await text(send, 400, f"Bad Request: {exc}")
            return
        method = METHODS.get(name)
        if method is None:
            known = ", ".join(sorted(METHODS))
            await self._xml(send, _fault(METHOD_NOT_FOUND, f"no method {name!r}; known: {known}"))
            return
        if (problem := method.check(args)) is not None:
            await self._xml(send, _fault(INVALID_PARAMS, f"{name} {problem}"))
            return
        status, reason = await self.gate.decide(authorization, index, method.reads(index, args))
        if status != 200:
            extra = [(b"www-authenticate", challenge(index))] if status == 401 else []
            await text(send, status, reason, [*extra, (b"cache-control", b"no-store")])
            return
        found, result = await anyio.to_thread.run_sync(self._answer, method, index, args)
        if not found:
            await text(send, 404, f"Not Found: there is no index named {index!r}")
            return
        try:
            encoded = xmlrpc.client.dumps((result,), methodresponse=True).encode()
        except OverflowError:  # a serial past XML-RPC's 32-bit <int>
            encoded = _fault(INVALID_PARAMS, f"{name}: a value exceeds XML-RPC's integer range")
        await self._xml(send, encoded)

    def _answer(self, method: Method, index: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        with self.db.read() as session:
            row = session.scalars(select(IndexRow).where(IndexRow.name == index)).one_or_none()
            if row is None:
                return False, None
            if row.kind == "virtual" and method is METHODS["package_releases"]:
                return True, self._virtual_releases(index, args)
            return True, method.answer(session, row, args)

    def _virtual_releases(self, index: str, args: tuple[Any, ...]) -> list[str]:
        """A virtual index's releases are what its pages show (its policy applied), so
        they are read from its published legacy JSON, not from rows."""
        name = normalize(args[0]) if is_valid_name(args[0]) else None
        if name is None:
            return []
        try:
            with open(os.path.join(self.gate.root, index, "pypi", name, "json"), "rb") as fh:
                document = json.loads(fh.read(_LEGACY_MAX))
        except (OSError, ValueError):
            return []
        releases = document.get("releases") if isinstance(document, dict) else None
        if not isinstance(releases, dict):
            return []
        pairs = [
            (version, bool(files) and all(f.get("yanked") for f in files))
            for version, files in releases.items()
            if isinstance(files, list)
        ]
        every = bool(args[1]) if len(args) > 1 else False
        return choose_versions(pairs, every=every)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request body, at most :data:`MAX_CALL_BYTES`; None once answered (413)."""
        length = header(scope, b"content-length")
        too_large = f"Content Too Large: an XML-RPC call may have at most {MAX_CALL_BYTES} bytes"
        if length is not None and length.strip().isdigit() and int(length) > MAX_CALL_BYTES:
            await text(send, 413, too_large, [(b"connection", b"close")])
            return None
        capped = CappedBody(receive, send, MAX_CALL_BYTES, "an XML-RPC call")
        chunks: list[bytes] = []
        while True:
            message = await capped.receive()
            if message["type"] != "http.request":
                return None  # the client left, or the cap answered 413
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _xml(self, send: Send, body: bytes) -> None:
        await respond(send, 200, body, [(b"cache-control", b"no-store")], content_type=_XML)
