"""Streaming ``multipart/form-data`` for uploads.

The ``content`` part goes straight to a temp file in the data directory (the
same filesystem as the blob store, so storing it is a rename) while its
sha256, md5 and blake2b-256 are computed; other fields are kept in memory under
a cap. Nothing is buffered whole, and the size caps are enforced as bytes
arrive, so an oversized upload is refused before it is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from tilsit.index.upload import Digests

__all__ = [
    "UPLOAD_TEMP",
    "FormTooLarge",
    "InvalidForm",
    "ParsedForm",
    "StreamingForm",
    "TempBudget",
    "UploadsBusy",
]

MAX_FIELDS_BYTES = 16 * 1024 * 1024  # long_description may be large, but not unbounded
MAX_FIELDS = 1000


class InvalidForm(ValueError):
    """A request body that is not a usable multipart upload form."""


class FormTooLarge(InvalidForm):
    """The file or the other fields are over their caps."""


class UploadsBusy(FormTooLarge):
    """The uploads in progress already hold as many temp bytes as the server allows."""


class TempBudget:
    """Bytes that the temp files of uploads in progress may hold together.

    Slow clients each hold a temp file for as long as they send; without a
    total, enough of them fill the disk the blobs and the database live on.
    One per process, like the disk space it stands for; the app sets its limit
    from the ``upload_temp_max`` setting.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)


UPLOAD_TEMP = TempBudget(1024 * 1024 * 1024)


@dataclass
class ParsedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    content_path: Path | None = None
    content_filename: str = ""
    digests: Digests | None = None
    budget: TempBudget | None = None
    held: int = 0  # bytes of ``budget`` this form's temp file holds

    def discard(self) -> None:
        if self.content_path is not None:
            self.content_path.unlink(missing_ok=True)
        if self.budget is not None:
            self.budget.release(self.held)
            self.held = 0


class _Hashing:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.blake2 = hashlib.blake2b(digest_size=32)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.blake2.update(data)
        self.size += len(data)

    def digests(self) -> Digests:
        return Digests(
            self.size, self.sha256.hexdigest(), self.md5.hexdigest(), self.blake2.hexdigest()
        )


class StreamingForm:
    """Feed body chunks with :meth:`feed`, then :meth:`finish` for the parsed form."""

    def __init__(
        self,
        content_type: str,
        tmp_dir: Path,
        max_file_size: int,
        budget: TempBudget | None = None,
    ) -> None:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidForm(
                "The upload must be multipart/form-data with a boundary"
                f" (got Content-Type {content_type!r})"
            )
        self.tmp_dir = tmp_dir
        self.max_file_size = max_file_size
        self.form = ParsedForm(budget=budget or UPLOAD_TEMP)
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._is_file = False
        self._value = bytearray()
        self._fields_bytes = 0
        self._file: IO[bytes] | None = None
        self._hashing: _Hashing | None = None
        self._error: InvalidForm | None = None
        self._finished = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
            max_header_count=16,
        )

    # python-multipart callbacks -------------------------------------------------
    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            self._fail(InvalidForm("A form part has no Content-Disposition name"))
            return
        self._name = options[b"name"].decode("utf-8", "replace")
        # Clients send the file as an untyped part named "content" with a filename.
        self._is_file = self._name == "content" and b"filename" in options
        if self._is_file:
            if self.form.content_path is not None:
                self._fail(InvalidForm("The form carries more than one 'content' file"))
                return
            self.form.content_filename = os.path.basename(
                options[b"filename"].decode("utf-8", "replace").replace("\\", "/")
            )
            fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
            self.form.content_path = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._hashing = _Hashing()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._error is not None:
            return
        chunk = data[start:end]
        if self._is_file:
            assert self._file is not None and self._hashing is not None
            if self._hashing.size + len(chunk) > self.max_file_size:
                self._fail(
                    FormTooLarge(
                        f"File too large: the limit for an uploaded file is {self.max_file_size} bytes"
                    )
                )
                return
            budget = self.form.budget
            if budget is not None and not budget.reserve(len(chunk)):
                self._fail(
                    UploadsBusy(
                        "Too many uploads in progress: the server holds at most"
                        f" {budget.limit} bytes of them at once; try again shortly"
                    )
                )
                return
            self.form.held += len(chunk)
            self._hashing.update(chunk)
            self._file.write(chunk)
        else:
            self._fields_bytes += len(chunk)
            if self._fields_bytes > MAX_FIELDS_BYTES:
                self._fail(
                    FormTooLarge(
                        f"The form fields are too large: at most {MAX_FIELDS_BYTES} bytes besides the file"
                    )
                )
                return
            self._value += chunk

    def _part_end(self) -> None:
        if self._error is not None:
            return
        if self._is_file:
            assert self._file is not None and self._hashing is not None
            self._file.close()
            self._file = None
            self.form.digests = self._hashing.digests()
            return
        values = self.form.fields.setdefault(self._name, [])
        if sum(len(v) for v in self.form.fields.values()) >= MAX_FIELDS:
            self._fail(FormTooLarge(f"The form has more than {MAX_FIELDS} fields"))
            return
        try:
            values.append(bytes(self._value).decode("utf-8"))
        except UnicodeDecodeError:
            self._fail(InvalidForm(f"Form field {self._name!r} is not valid UTF-8"))

    def _end(self) -> None:
        self._finished = True

    # -----------------------------------------------------------------------------
    def _fail(self, error: InvalidForm) -> None:
        if self._error is None:
            self._error = error

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except InvalidForm:
            raise
        except FormParserError as exc:
            self._fail(InvalidForm(f"Malformed multipart body: {exc}"))
        if self._error is not None:
            self.close()
            raise self._error

    def finish(self) -> ParsedForm:
        try:
            self._parser.finalize()
        except FormParserError as exc:
            self._fail(InvalidForm(f"Malformed multipart body: {exc}"))
        if self._error is None and not self._finished:
            self._fail(InvalidForm("The multipart body ended before its closing boundary"))
        if self._error is not None:
            self.close()
            raise self._error
        if self.form.content_path is None or self.form.digests is None:
            self.close()
            raise InvalidForm("The form has no 'content' file part: nothing was uploaded")
        return self.form

    def close(self) -> None:
        """Drop the temp file of a failed form."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self.form.discard()
