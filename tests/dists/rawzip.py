"""A ZIP writer for tests that controls every field, to build archives zipfile would not.

``build_zip([RawEntry(...)])`` writes local headers, data, optional descriptors, the central
directory and the end record; each ``RawEntry`` field, and the ``local`` / ``central``
override dicts, set what one header says independently of the other.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

STORED = 0
DEFLATED = 8
UNIX = 3 << 8  # "made by" host system: Unix, so the high 16 bits of external_attr are a mode
REGULAR_MODE = 0o100644 << 16
DIR_MODE = 0o040755 << 16


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def extra_field(kind: int, payload: bytes) -> bytes:
    return struct.pack("<HH", kind, len(payload)) + payload


@dataclass
class RawEntry:
    name: str | bytes
    data: bytes = b""
    method: int = DEFLATED
    flags: int = 0
    external_attr: int = REGULAR_MODE
    extra: bytes = b""
    payload: bytes | None = None  # the compressed bytes; default: data, compressed by method
    descriptor: bytes = b""  # written right after the payload
    # Per-header overrides of: name, flags, method, crc, compressed_size, size, extra, offset.
    local: dict[str, object] = field(default_factory=dict)
    central: dict[str, object] = field(default_factory=dict)

    @property
    def raw_name(self) -> bytes:
        return self.name.encode() if isinstance(self.name, str) else self.name

    def compressed(self) -> bytes:
        if self.payload is not None:
            return self.payload
        return deflate(self.data) if self.method == DEFLATED else self.data

    def values(self, offset: int) -> dict[str, object]:
        return {
            "name": self.raw_name,
            "flags": self.flags,
            "method": self.method,
            "crc": zlib.crc32(self.data),
            "compressed_size": len(self.compressed()),
            "size": len(self.data),
            "extra": self.extra,
            "offset": offset,
        }


def local_header(values: dict[str, object]) -> bytes:
    name, extra = values["name"], values["extra"]
    assert isinstance(name, bytes) and isinstance(extra, bytes)
    fixed = struct.pack(
        "<4s5H3L2H",
        b"PK\x03\x04",
        20,
        values["flags"],
        values["method"],
        0,
        0x21,
        values["crc"],
        values["compressed_size"],
        values["size"],
        len(name),
        len(extra),
    )
    return fixed + name + extra


def central_header(values: dict[str, object], external_attr: int, comment: bytes = b"") -> bytes:
    name, extra = values["name"], values["extra"]
    assert isinstance(name, bytes) and isinstance(extra, bytes)
    fixed = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        UNIX | 20,
        20,
        values["flags"],
        values["method"],
        0,
        0x21,
        values["crc"],
        values["compressed_size"],
        values["size"],
        len(name),
        len(extra),
        len(comment),
        0,
        0,
        external_attr,
        values["offset"],
    )
    return fixed + name + extra + comment


def end_record(
    entries: int,
    cd_size: int,
    cd_offset: int,
    comment: bytes = b"",
    over: dict[str, int] | None = None,
) -> bytes:
    fields = {"disk": 0, "cd_disk": 0, "disk_entries": entries, "entries": entries}
    fields |= {"cd_size": cd_size, "cd_offset": cd_offset}
    fields |= over or {}
    return (
        struct.pack(
            "<4s4H2LH",
            b"PK\x05\x06",
            fields["disk"],
            fields["cd_disk"],
            fields["disk_entries"],
            fields["entries"],
            fields["cd_size"],
            fields["cd_offset"],
            len(comment),
        )
        + comment
    )


def zip64_end(entries: int, cd_size: int, cd_offset: int, at: int) -> bytes:
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    return record + locator


def build_zip(
    entries: list[RawEntry],
    *,
    comment: bytes = b"",
    prefix: bytes = b"",
    between: bytes = b"",  # between the last entry and the central directory
    before_end: bytes = b"",  # between the central directory and the end record
    suffix: bytes = b"",
    zip64: bool = False,
    end: dict[str, int] | None = None,
) -> bytes:
    """The archive; offsets count from the start of ``prefix``'s end, as a writer would."""
    body = bytearray()
    centrals = []
    for entry in entries:
        values = entry.values(len(body))
        local = values | entry.local
        body += local_header(local) + entry.compressed() + entry.descriptor
        centrals.append(central_header(values | entry.central, entry.external_attr))
    body += between
    cd_offset = len(body)
    directory = b"".join(centrals)
    body += directory
    tail = before_end
    if zip64:
        tail += zip64_end(len(entries), len(directory), cd_offset, len(body) + len(before_end))
        record = end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, comment, end)
    else:
        record = end_record(len(entries), len(directory), cd_offset, comment, end)
    return prefix + bytes(body) + tail + record + suffix
