"""Files in an object store when the bucket cannot be reached: a 503 that says why.

The bucket is a closed port on 127.0.0.1 (nothing listens on the discard port), so
the fetch fails before any byte; the answer must not have started, and must be a
503 with Retry-After and the reason in words, counted as a blob-store failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from tests.postgres import free_port
from tilsit.store.blobfile import BlobPointer
from tilsit.store.counted import BLOB_ERRORS
from tilsit.store.fs import FilesystemBlobStore
from tilsit.web.storedfiles import StoredFiles


def test_an_unreachable_bucket_is_a_503_that_says_why(tmp_path: Path) -> None:
    closed = free_port()  # free: nothing listens there
    files = StoredFiles(
        FilesystemBlobStore(tmp_path / "blobs", tmp_path),
        lambda sha256, name, seconds: f"http://127.0.0.1:{closed}/bucket/{sha256}",
    )
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    failures = BLOB_ERRORS.labels("s3", "get", "BlobStoreUnavailable")
    before = failures._value.get()
    scope = {"type": "http", "method": "GET", "headers": [], "path": "/packages/x"}
    pointer = BlobPointer("ab" * 32, 1000)

    async def answer() -> None:
        await files.send(scope, send, pointer, "demo-1.0.tar.gz", f'"{pointer.sha256}"', [])
        await files.aclose()

    anyio.run(answer)
    start, body = messages
    assert start["status"] == 503
    assert (b"retry-after", b"10") in start["headers"]
    assert b"the blob store cannot be read: ConnectError" in body["body"]
    assert failures._value.get() == before + 1
