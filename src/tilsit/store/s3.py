"""S3 blob store: ``<prefix>/<aa>/<bb>/<sha256>`` in one bucket, through boto3.

Every write is a conditional put (``If-None-Match: *``): an object, once stored,
is never overwritten. When the key already exists the put fails with 412, which
is success here: the key is the sha256 of the bytes, so the bytes are the same.

The bytes are checked before :meth:`S3BlobStore.put_file` returns, so the row
that names the blob commits only after:

- a single put carries ``x-amz-checksum-sha256`` computed from the sha256 the
  caller names; the server hashes what it received and refuses the put
  (``BadDigest``) if they differ, so no object is ever stored under a name its
  bytes do not have. The bytes read from the source are hashed on the way out
  as well, and a mismatch is refused here too (a server that ignored the header);
- a multipart upload hashes the parts as they are read and sent; the upload is
  completed only if the whole matches, else aborted (its parts never become an
  object). A part is at most :data:`PART_SIZE` and read from the file as the
  request is sent, so no file is ever held in memory.

A source that fails or shrinks mid-stream makes the request fail before its
declared length is sent; S3 stores an object only whole, so nothing is stored.

"In use since" (what fsck's grace period compares, an mtime on the filesystem)
is the later of the object's LastModified and that of a small marker object
``<prefix>/.in-use/<sha256>``, which a writer reusing a stored blob puts
*before* it checks that the blob exists. :meth:`S3BlobStore.reap` moves the blob
aside (a server-side copy to ``<prefix>/.reaping/``, then delete), *then* reads
the marker again, and puts the blob back if the marker is fresh. So a writer that
saw the blob (its marker put came before its check, which came before the
delete) has its marker seen by the re-check and the blob restored; a writer that
did not see it stores the bytes anew. Either way the row it then commits names a
blob that is there. (This relies on S3's read-after-write consistency, which
AWS S3 and SeaweedFS give.)

Multipart uploads left by a killed process are invisible and hold no key; a
bucket lifecycle rule (AbortIncompleteMultipartUpload) removes them (docs/storage.md).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

from tilsit.store.blobs import (
    READ_CHUNK,
    BlobCorrupt,
    BlobStoreError,
    BlobStoreUnavailable,
    BlobTooLarge,
    MissingBlob,
    NoLocalPath,
)

__all__ = ["MULTIPART_THRESHOLD", "PART_SIZE", "S3BlobStore", "S3Config", "make_client"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Files larger than this are sent in parts of PART_SIZE (S3's least part is 5 MiB).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
# The S3 error codes that mean "no such key" and "the key exists" (If-None-Match: *).
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"412", "PreconditionFailed"}
_CONFLICT = {"409", "ConditionalRequestConflict", "OperationAborted"}
_OPERATOR = {
    "AccessDenied": "access denied (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": "the access key id is not known to the server",
    "SignatureDoesNotMatch": "the secret access key is wrong",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "the bucket name is not valid",
    "ExpiredToken": "the session token has expired",
}

T = TypeVar("T")


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""


def make_client(config: S3Config) -> Any:
    """A boto3 S3 client; credentials from ``config`` when set, else boto3's usual chain
    (AWS_* environment variables, ~/.aws, an instance role)."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 4},
        "connect_timeout": 10,
        "read_timeout": 60,
        # Presigned URLs with SigV4 (boto3 would sign them with the legacy V2, which
        # S3-compatible servers verify unevenly, e.g. with response-* parameters).
        "signature_version": "s3v4",
    }
    if config.endpoint_url:
        # S3-compatible servers (SeaweedFS, MinIO) are addressed by path, not by host name.
        options["s3"] = {"addressing_style": "path"}
    kwargs: dict[str, Any] = {"config": Config(**options)}
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
    if config.region:
        kwargs["region_name"] = config.region
    if config.access_key_id or config.secret_access_key:
        kwargs["aws_access_key_id"] = config.access_key_id
        kwargs["aws_secret_access_key"] = config.secret_access_key
    return boto3.client("s3", **kwargs)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error") or {}
    code = str(error.get("Code", ""))
    status = str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))
    return code or status


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))


class _HashingReader:
    """``length`` bytes of ``fh`` from ``offset``, hashed as they are read (from ``base``,
    the digest of what came before). botocore may read a body twice (a checksum, then the
    send) or again on a retry; each pass starts with a seek to 0, which starts the hash
    over, so the digest is that of the last pass: the bytes that were sent.

    A source that ends early raises :class:`BlobCorrupt` instead of ending the body,
    so the request fails short of its Content-Length and S3 stores nothing."""

    def __init__(self, fh: BinaryIO, offset: int, length: int, base: Any) -> None:
        self._fh = fh
        self._offset = offset
        self._length = length
        self._base = base
        self.digest = base.copy()
        self._position = 0
        fh.seek(offset)

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._position
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        data = self._fh.read(min(size, READ_CHUNK))
        if not data:
            raise BlobCorrupt(
                f"the source ended after {self._offset + self._position} bytes, before"
                f" the {self._offset + self._length} it had; not stored"
            )
        self._position += len(data)
        self.digest.update(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        if whence == 1:
            position += self._position
        elif whence == 2:
            position += self._length
        if position != 0:
            # Only rewinds are needed (botocore rewinds for a checksum pass or a retry).
            raise OSError("a blob body can only be rewound to its start")
        self._position = 0
        self.digest = self._base.copy()
        self._fh.seek(self._offset)
        return 0

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return self._length


class S3BlobStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        tmp: Path | None = None,
    ) -> None:
        self.client = client
        self.tmp = tmp
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._base = f"{self.prefix}/" if self.prefix else ""
        self._blob_key = re.compile(
            "^" + re.escape(self._base) + r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$"
        )

    # Keys ------------------------------------------------------------------------

    def key(self, sha256: str) -> str:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self._base}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _marker(self, sha256: str) -> str:
        return f"{self._base}.in-use/{sha256}"

    def _quarantine(self, sha256: str) -> str:
        return f"{self._base}.reaping/{sha256}"

    # Errors ----------------------------------------------------------------------

    def _call(self, what: str, sha256: str, call: Callable[[], T]) -> T:
        """``call()``, with boto3's errors named: MissingBlob for a missing key,
        BlobStoreUnavailable for what an operator must fix or wait out."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND or (_status(exc) == "404" and code != "NoSuchBucket"):
                raise MissingBlob(sha256) from exc
            if code in _OPERATOR:
                raise BlobStoreUnavailable(
                    f"S3 bucket {self.bucket!r}: cannot {what} blob {sha256}: {_OPERATOR[code]}"
                ) from exc
            if _status(exc).startswith("5"):
                raise BlobStoreUnavailable(
                    f"S3 bucket {self.bucket!r}: cannot {what} blob {sha256}: the server"
                    f" failed ({code}); try again later"
                ) from exc
            raise BlobStoreError(
                f"S3 bucket {self.bucket!r}: cannot {what} blob {sha256}: {code}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            # No connection, a timeout, no credentials found: nothing the request could fix.
            raise BlobStoreUnavailable(
                f"S3 bucket {self.bucket!r}: cannot {what} blob {sha256}: {exc}"
            ) from exc

    def _head(self, key: str, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._call(
                "look up", sha256, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except MissingBlob:
            return None
        return head

    # Writing ---------------------------------------------------------------------

    def _reuse(self, sha256: str) -> bool:
        """Take a stored blob for a new row: its marker put first, then its existence
        checked (the order the module docstring's argument against fsck rests on)."""
        self._call(
            "mark in use",
            sha256,
            lambda: self.client.put_object(Bucket=self.bucket, Key=self._marker(sha256), Body=b""),
        )
        return self._head(self.key(sha256), sha256) is not None

    def put_file(self, source: Path, sha256: str) -> None:
        self.key(sha256)  # a sha256, before anything is sent
        if self._reuse(sha256):
            source.unlink(missing_ok=True)
            return
        with open(source, "rb") as fh:
            size = fh.seek(0, 2)
            try:
                self.put_stream(fh, size, sha256)
            except BlobCorrupt:
                source.unlink(missing_ok=True)
                raise
        source.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> str:
        import io

        sha256 = hashlib.sha256(data).hexdigest()
        if not self._reuse(sha256):
            self.put_stream(io.BytesIO(data), len(data), sha256)
        return sha256

    def put_stream(self, fh: BinaryIO, size: int, sha256: str) -> None:
        """Store ``size`` bytes of the seekable ``fh`` (from its start) as ``sha256``.

        A new blob's own LastModified is its "in use since"; a caller that may be
        reusing a stored one puts its marker first (:meth:`_reuse`), as put_file does."""
        key = self.key(sha256)
        if size > self.multipart_threshold:
            self._put_multipart(fh, size, sha256, key)
        else:
            self._put_single(fh, size, sha256, key)

    def _put_single(self, fh: BinaryIO, size: int, sha256: str, key: str) -> None:
        body = _HashingReader(fh, 0, size, hashlib.sha256())
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        try:
            self._call(
                "store",
                sha256,
                lambda: self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ChecksumSHA256=checksum,
                    IfNoneMatch="*",
                ),
            )
        except BlobStoreError as exc:
            code = _code(exc.__cause__) if isinstance(exc.__cause__, Exception) else ""
            if code in _EXISTS or code in _CONFLICT:
                return  # stored meanwhile by another writer: the same bytes, by their name
            if code in {"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"}:
                raise BlobCorrupt(
                    f"the bytes to store do not hash to {sha256} (the S3 server refused"
                    " them); not stored"
                ) from exc
            raise
        if body.digest.hexdigest() != sha256:
            # The server stored bytes it should have refused (it ignores the checksum
            # header): take them out before anyone names them.
            with contextlib.suppress(BlobStoreError, MissingBlob):
                self._call(
                    "delete",
                    sha256,
                    lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
                )
            raise BlobCorrupt(
                f"the bytes sent hash to {body.digest.hexdigest()}, not {sha256}; not stored"
            )

    def _put_multipart(self, fh: BinaryIO, size: int, sha256: str, key: str) -> None:
        upload = self._call(
            "start storing",
            sha256,
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key),
        )
        upload_id = upload["UploadId"]
        completed = False
        try:
            digest = hashlib.sha256()
            parts: list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, size, self.part_size), start=1):
                length = min(self.part_size, size - offset)
                body = _HashingReader(fh, offset, length, digest)
                part = self._call(
                    "store",
                    sha256,
                    functools.partial(
                        self.client.upload_part,
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                        ContentLength=length,
                    ),
                )
                digest = body.digest
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            if digest.hexdigest() != sha256:
                raise BlobCorrupt(
                    f"the bytes sent hash to {digest.hexdigest()}, not {sha256}; not stored"
                )
            try:
                self._call(
                    "store",
                    sha256,
                    lambda: self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        IfNoneMatch="*",
                    ),
                )
                completed = True
            except BlobStoreError as exc:
                code = _code(exc.__cause__) if isinstance(exc.__cause__, Exception) else ""
                # SeaweedFS (like AWS) answers a conditional completion on an existing
                # key with 412 and leaves the upload open: it is aborted below.
                if code not in _EXISTS and code not in _CONFLICT:
                    raise
        finally:
            if not completed:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )

    # Reading ---------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        return self._head(self.key(sha256), sha256) is not None

    def local_path(self, sha256: str) -> Path | None:
        return None

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        # In the data directory's tmp/ (when given): a copy a killed process leaves is
        # reaped with the other leftovers (store/leftovers.py).
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="blob-copy-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in self.open_range(sha256):
                    fh.write(chunk)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def path(self, sha256: str) -> Path:
        raise NoLocalPath(f"blob {sha256} is in S3 bucket {self.bucket!r}, not on this disk")

    def size(self, sha256: str) -> int:
        head = self._head(self.key(sha256), sha256)
        if head is None:
            raise MissingBlob(sha256)
        return int(head["ContentLength"])

    def stored_at(self, sha256: str) -> float:
        head = self._head(self.key(sha256), sha256)
        if head is None:
            raise MissingBlob(sha256)
        return max(float(head["LastModified"].timestamp()), self._marked_at(sha256))

    def _marked_at(self, sha256: str) -> float:
        marker = self._head(self._marker(sha256), sha256)
        return 0.0 if marker is None else float(marker["LastModified"].timestamp())

    def read_bytes(self, sha256: str, limit: int) -> bytes:
        response = self._call(
            "read",
            sha256,
            lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(sha256)),
        )
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > limit:
                raise BlobTooLarge(f"blob {sha256} is larger than {limit} bytes")
            data: bytes = self._call("read", sha256, lambda: body.read(limit + 1))
        finally:
            body.close()
        if len(data) > limit:
            raise BlobTooLarge(f"blob {sha256} is larger than {limit} bytes")
        return data

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self.size(sha256)  # MissingBlob still, for a blob that is not there
            return iter(())
        wanted = f"bytes={start}-" + ("" if end is None else str(end - 1))
        response = self._call(
            "read",
            sha256,
            lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), Range=wanted),
        )
        return self._chunks(response["Body"], sha256)

    def _chunks(self, body: Any, sha256: str) -> Iterator[bytes]:
        try:
            while True:
                chunk: bytes = self._call("read", sha256, lambda: body.read(READ_CHUNK))
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def presigned_url(self, sha256: str, filename: str, expires: int) -> str:
        """A URL that reads the blob for ``expires`` seconds without credentials (for
        serving files by redirect); the download is named ``filename``. Signing is local:
        it neither checks that the blob exists nor calls the server."""
        disposition = "attachment; filename*=UTF-8''" + quote(filename, safe="")
        url: str = self._call(
            "sign a URL for",
            sha256,
            lambda: self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(sha256),
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=expires,
            ),
        )
        return url

    def __iter__(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            "list", "*", lambda: iter(paginator.paginate(Bucket=self.bucket, Prefix=self._base))
        )
        while True:
            page = self._call("list", "*", lambda: next(pages, None))
            if page is None:
                return
            for item in page.get("Contents", ()):
                match = self._blob_key.match(item["Key"])
                if match and match[3].startswith(match[1] + match[2]):
                    yield match[3]

    # Removing --------------------------------------------------------------------

    def delete(self, sha256: str) -> None:
        for key in (self.key(sha256), self._marker(sha256)):
            self._call(
                "delete",
                sha256,
                functools.partial(self.client.delete_object, Bucket=self.bucket, Key=key),
            )

    def reap(self, sha256: str, cutoff: float) -> bool:
        """Delete an orphan blob unless it was put or reused since ``cutoff``; True if
        deleted. The caller holds the writer lock and has checked that no row names it;
        a writer reusing it outside the lock is covered by the marker re-check after the
        delete (module docstring)."""
        key = self.key(sha256)
        try:
            if self.stored_at(sha256) > cutoff:
                return False
        except MissingBlob:
            return False
        quarantine = self._quarantine(sha256)
        source = {"Bucket": self.bucket, "Key": key}
        self._call(
            "set aside",
            sha256,
            lambda: self.client.copy_object(Bucket=self.bucket, Key=quarantine, CopySource=source),
        )
        self._call("reap", sha256, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
        if self._marked_at(sha256) > cutoff:
            # Reused meanwhile: put back the same bytes (by name), or find them stored anew.
            back = {"Bucket": self.bucket, "Key": quarantine}
            self._call(
                "put back",
                sha256,
                lambda: self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=back),
            )
            self._call(
                "reap",
                sha256,
                lambda: self.client.delete_object(Bucket=self.bucket, Key=quarantine),
            )
            return False
        for gone in (quarantine, self._marker(sha256)):
            self._call(
                "reap",
                sha256,
                functools.partial(self.client.delete_object, Bucket=self.bucket, Key=gone),
            )
        return True
