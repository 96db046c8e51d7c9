"""Tar headers built by hand for tests, for archives tarfile will not write."""

from __future__ import annotations

import gzip
import io
import tarfile

BLOCK = 512
POSIX = b"ustar\x0000"
GNU = b"ustar  \x00"


def header(
    name: bytes,
    *,
    size: int = 0,
    typeflag: bytes = b"0",
    magic: bytes = POSIX,
    prefix: bytes = b"",
    linkname: bytes = b"",
    size_field: bytes | None = None,
    checksum_delta: int = 0,
) -> bytes:
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1_704_067_200
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = magic
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % (sum(block) + checksum_delta)
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", **kw: object) -> bytes:
    return header(name, size=len(data), **kw) + pad(data)  # type: ignore[arg-type]


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(*records: tuple[bytes, bytes], typeflag: bytes = b"x", raw: bytes | None = None) -> bytes:
    data = raw if raw is not None else b"".join(pax_record(k, v) for k, v in records)
    return member(b"PaxHeader", data, typeflag=typeflag)


def long_name(name: bytes) -> bytes:
    return member(b"././@LongLink", name + b"\0", typeflag=b"L", magic=GNU)


def tar(*parts: bytes, end: bool = True) -> bytes:
    return b"".join(parts) + (bytes(2 * BLOCK) if end else b"")


def gz(data: bytes, level: int = 9) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def tarfile_archive(
    members: dict[str, bytes], *, format: int = tarfile.PAX_FORMAT, **info: object
) -> bytes:
    """A tar.gz written by tarfile; ``info`` sets attributes on every TarInfo."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=format) as archive:
        for name, data in members.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            for key, value in info.items():
                setattr(entry, key, value)
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()
