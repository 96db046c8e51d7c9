"""Serving files of the static tree: pages from a small in-memory cache, files from disk
(or, where the tree holds a blob pointer, from the object store: web/storedfiles.py).

Freshness is by ``stat``: the writer replaces pages by rename, so a new inode,
mtime or size means new bytes. ETags are strong (content hashes); pages also
carry their journal serial, read from the page itself, as ``X-PyPI-Last-Serial``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from tilsit.spec.simple import JSON_SERIAL, JSON_SERIAL_HEAD
from tilsit.store.blobfile import POINTER_MAX, BlobPointer, read_pointer
from tilsit.web.asgi import Headers, Scope, Send, header, respond, text

# Answers a request for a file the tree holds a pointer to (web/storedfiles.py):
# (scope, send, pointer, file name, ETag, headers).
SendStored = Callable[[Scope, Send, BlobPointer, str, str, Headers], Awaitable[None]]

__all__ = [
    "CachedFile",
    "SendStored",
    "TreeFiles",
    "answer_conditions",
    "etag_matches",
    "parse_range",
]

_SERIAL_HTML = re.compile(rb"<!--SERIAL (\d+)-->\s*$")
# The legacy JSON API's top-level key; inside strings quotes are escaped, so
# only the real key can match.
_SERIAL_LEGACY = re.compile(rb'"last_serial": (\d+)')
_CHUNK = 256 * 1024
_INLINE = 1024 * 1024  # files up to this size are read and sent in one message


@dataclass(frozen=True, slots=True)
class CachedFile:
    key: tuple[int, int, int]  # inode, mtime_ns, size
    data: bytes
    etag: str
    serial: int | None


# More digits than any file size has; longer numbers are refused before int()
# (which raises past 4300 digits) as nginx refuses them: 416, not satisfiable.
_RANGE_DIGITS = 18
# What a missing or unreadable tree path raises: the path names nothing here.
_NOT_THERE = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
_NAMES_NOTHING = (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL)


def parse_range(value: str, size: int) -> tuple[int, int] | bool | None:
    """A single ``bytes=`` range as (first, last), None to ignore it, False if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if match is None:
        return None  # several ranges or another unit: answer with the whole file
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if len(first_s) > _RANGE_DIGITS or len(last_s) > _RANGE_DIGITS:
        return False
    if not first_s:  # suffix: the last N bytes
        length = int(last_s)
        if length == 0:
            return False
        return (max(size - length, 0), size - 1) if size else False
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first > last and last_s:
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


class TreeFiles:
    def __init__(self, root: Path, cache_bytes: int, stored: SendStored | None = None) -> None:
        self.root = root
        self.stored = stored  # an object store's files (pointers in the tree); None: fs
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, CachedFile] = OrderedDict()
        self._cached = 0

    def _path(self, relative: str) -> str | None:
        """The filesystem path of a tree path, None if it cannot be in the tree.

        The request path was checked once (:mod:`tilsit.web.requestpath`); this is
        the last line before the filesystem, for every caller: no NUL (which
        ``os.stat`` refuses with ValueError), no segment that climbs.
        """
        if "\x00" in relative or any(p in (".", "..") for p in relative.split("/")):
            return None
        return os.path.join(self.root, relative)

    def exists(self, relative: str) -> bool:
        """Whether the tree holds a file at ``relative`` (one stat)."""
        path = self._path(relative)
        return path is not None and os.path.isfile(path)

    def page(self, relative: str, *, with_serial: bool = True) -> CachedFile | None:
        """A small file (page or metadata), from the cache when its stat is unchanged."""
        path = self._path(relative)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except _NOT_THERE:
            return None
        except OSError as exc:
            if exc.errno in _NAMES_NOTHING:
                return None
            raise
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cache.get(relative)
        if cached is not None and cached.key == key:
            self._cache.move_to_end(relative)
            return cached
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, IsADirectoryError):
            return None
        entry = self.entry(data, key, with_serial=with_serial)
        if cached is not None:
            self._cached -= len(cached.data)
        if len(data) <= self.cache_bytes // 8:
            self._cache[relative] = entry
            self._cached += len(data)
            while self._cached > self.cache_bytes and self._cache:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= len(dropped.data)
        else:
            self._cache.pop(relative, None)
        return entry

    @staticmethod
    def entry(
        data: bytes, key: tuple[int, int, int] = (0, 0, 0), *, with_serial: bool = True
    ) -> CachedFile:
        """A page's bytes with the ETag and serial it is served with, from the tree or not."""
        match = with_serial and (
            _SERIAL_HTML.search(data[-64:])
            or JSON_SERIAL.search(data[:JSON_SERIAL_HEAD])
            or _SERIAL_LEGACY.search(data)
        )
        return CachedFile(
            key,
            data,
            '"' + hashlib.sha256(data).hexdigest()[:40] + '"',
            int(match[1]) if match else None,
        )

    async def send_page(
        self, scope: Scope, send: Send, entry: CachedFile, headers: Headers, content_type: bytes
    ) -> None:
        head = scope["method"] == "HEAD"
        headers = [*headers, (b"etag", entry.etag.encode())]
        if entry.serial is not None:
            headers.append((b"x-pypi-last-serial", str(entry.serial).encode()))
        if etag_matches(header(scope, b"if-none-match"), entry.etag):
            await respond(send, 304, b"", headers, head=True, content_type=None)
            return
        await respond(send, 200, entry.data, headers, head=head, content_type=content_type)

    async def send_file(
        self, scope: Scope, send: Send, relative: str, etag: str, headers: Headers
    ) -> bool:
        """Send a distribution file with Range, HEAD and 304; False if it is not in the tree.

        A tree path holding a blob pointer (an object store's file,
        :mod:`tilsit.store.blobfile`) is answered from the store by ``stored``.
        """
        path = self._path(relative)
        if path is None:
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except _NOT_THERE:
            return False
        except OSError as exc:
            if exc.errno in _NAMES_NOTHING:
                return False
            raise
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fd).st_size
            if self.stored is not None and size <= POINTER_MAX:
                pointer = read_pointer(fh.read(POINTER_MAX))
                if pointer is not None:
                    name = relative.rsplit("/", 1)[-1]
                    await self.stored(scope, send, pointer, name, etag, headers)
                    return True
            plan = await answer_conditions(scope, send, etag, size, headers)
            if plan is None:
                return True
            status, first, length, headers = plan
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if scope["method"] == "HEAD" or length == 0:
                await send({"type": "http.response.body", "body": b""})
                return True
            fh.seek(first)
            if length <= _INLINE:
                await send({"type": "http.response.body", "body": fh.read(length)})
                return True
            remaining = length
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(fh.read, min(_CHUNK, remaining))
                if not chunk:
                    break  # the file shrank under us: a bug elsewhere; end the body short
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
            return True


async def answer_conditions(
    scope: Scope, send: Send, etag: str, size: int, headers: Headers
) -> tuple[int, int, int, Headers] | None:
    """Answer a file request's 304 or 416 here (None), or say what to send: the status,
    the first byte, the length and the headers (Content-Range, -Type, -Length added)."""
    head = scope["method"] == "HEAD"
    headers = [*headers, (b"etag", etag.encode()), (b"accept-ranges", b"bytes")]
    if etag_matches(header(scope, b"if-none-match"), etag):
        await respond(send, 304, b"", headers, head=True, content_type=None)
        return None
    first, last, status = 0, size - 1, 200
    range_header = header(scope, b"range")
    if_range = header(scope, b"if-range")
    if range_header and (if_range is None or if_range.strip() == etag):
        parsed = parse_range(range_header, size)
        if parsed is False:
            await text(
                send,
                416,
                f"Range Not Satisfiable: the file has {size} bytes",
                [*headers, (b"content-range", f"bytes */{size}".encode())],
                head=head,
            )
            return None
        if isinstance(parsed, tuple):
            first, last = parsed
            status = 206
            headers.append((b"content-range", f"bytes {first}-{last}/{size}".encode()))
    length = last - first + 1 if size else 0
    headers += [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(length).encode()),
    ]
    return status, first, length, headers


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return etag in candidates
