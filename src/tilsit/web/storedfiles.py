"""Serving distribution files kept in an object store (``blob_store = "s3"``).

The tree holds a pointer where the filesystem store would hard-link the blob
(:mod:`tilsit.store.blobfile`). A request for such a path is answered here, in
one of two ways (``s3_serve_files``):

- ``stream``: the bytes through tilsit, read from the store in chunks, with the
  same ETag, 304, Range and HEAD answers as a file on disk. HEAD and 304 cost no
  request to the store: the pointer holds the size.
- ``redirect``: a 302 to a presigned URL of the blob, signed locally (no request
  to the store), valid ``s3_url_expiry`` seconds. The redirect may be cached for
  half that, never longer, so no cache hands out an expired URL.

A store that fails before the answer starts gets a 503 (unreachable) or a 500
(the blob is gone: ``tilsit fsck`` names what is lost), with the reason. One that
fails after it started cannot change the status: the connection is dropped, so
the client sees a short body, never a whole wrong one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import anyio.to_thread

from tilsit.instance import Instance
from tilsit.store.blobfile import BlobPointer
from tilsit.store.blobs import BlobStore, BlobStoreError, BlobStoreUnavailable, MissingBlob
from tilsit.store.counted import unwrapped
from tilsit.store.s3 import S3BlobStore
from tilsit.web.asgi import Headers, Scope, Send, header, respond, text
from tilsit.web.treefiles import answer_conditions, etag_matches

__all__ = ["BlobStoreBodyCut", "StoredFiles", "stored_files"]

log = logging.getLogger(__name__)

# Signs a presigned URL: (sha256, download file name, seconds valid) -> URL.
Signer = Callable[[str, str, int], str]


def stored_files(instance: Instance) -> StoredFiles | None:
    """How this instance answers files kept in an object store; None on the filesystem,
    whose tree holds the files themselves."""
    settings = instance.settings
    if settings.blob_store != "s3":
        return None
    blobs = instance.blobs
    store = unwrapped(blobs)  # the S3 store itself, under the failure counter
    sign = store.presigned_url if isinstance(store, S3BlobStore) else None
    redirect = settings.s3_serve_files == "redirect"
    return StoredFiles(blobs, sign if redirect else None, settings.s3_url_expiry)


class BlobStoreBodyCut(BlobStoreError):
    """The store sent fewer or more bytes than the file has, after the answer began."""


class StoredFiles:
    def __init__(self, blobs: BlobStore, sign: Signer | None = None, expiry: int = 300) -> None:
        self.blobs = blobs
        self.sign = sign  # set: answer with a redirect to the bucket
        self.expiry = expiry

    async def send(
        self,
        scope: Scope,
        send: Send,
        pointer: BlobPointer,
        filename: str,
        etag: str,
        headers: Headers,
    ) -> None:
        if self.sign is not None:
            await self._redirect(scope, send, pointer, filename, etag, headers)
            return
        plan = await answer_conditions(scope, send, etag, pointer.size, headers)
        if plan is None:
            return
        status, first, length, headers = plan
        if scope["method"] == "HEAD" or length == 0:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            chunks = await anyio.to_thread.run_sync(
                self.blobs.open_range, pointer.sha256, first, first + length
            )
        except MissingBlob:
            log.error("blob %s (%s) is in the tree but not in the store", pointer.sha256, filename)
            await text(
                send,
                500,
                f"Internal Server Error: the blob of {filename} ({pointer.sha256}) is missing"
                " from the blob store; `tilsit fsck` lists what is lost",
            )
            return
        except BlobStoreUnavailable as exc:
            await text(
                send,
                503,
                f"Service Unavailable: the blob store cannot be read: {exc}",
                [(b"retry-after", b"10")],
            )
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            await _stream(send, chunks, length, pointer.sha256)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    async def _redirect(
        self,
        scope: Scope,
        send: Send,
        pointer: BlobPointer,
        filename: str,
        etag: str,
        headers: Headers,
    ) -> None:
        assert self.sign is not None
        given = b" ".join(v for k, v in headers if k == b"cache-control")
        scope_word = "private" if b"private" in given else "public"  # a private index's stays so
        kept = [(k, v) for k, v in headers if k != b"cache-control"]
        kept += [
            (b"etag", etag.encode()),
            (b"cache-control", f"{scope_word}, max-age={self.expiry // 2}".encode()),
        ]
        if etag_matches(header(scope, b"if-none-match"), etag):
            await respond(send, 304, b"", kept, head=True, content_type=None)
            return
        url = self.sign(pointer.sha256, filename, self.expiry)
        await text(
            send,
            302,
            f"Found: {filename} is served from the blob store",
            [*kept, (b"location", url.encode())],
            head=scope["method"] == "HEAD",
        )


async def _stream(send: Send, chunks: Iterator[bytes], length: int, sha256: str) -> None:
    sent = 0
    while chunk := await anyio.to_thread.run_sync(next, chunks, b""):
        sent += len(chunk)
        if sent > length:
            raise BlobStoreBodyCut(f"blob {sha256}: the store sent more than {length} bytes")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if sent != length:
        raise BlobStoreBodyCut(f"blob {sha256}: the store sent {sent} of {length} bytes")
    await send({"type": "http.response.body", "body": b""})
