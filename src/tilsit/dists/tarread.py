"""Reading a ``.tar.gz`` (an sdist) strictly, in memory, without extracting it.

The gzip stream is inflated a chunk at a time and every byte counted against the
:class:`~tilsit.dists.Limits`; the tar headers are parsed here rather than by ``tarfile`` so
that each ambiguity tar readers resolve differently is refused rather than resolved:

- a PAX ``size`` that differs from the header's (readers that ignore PAX then read file data
  as headers), duplicate PAX keys, a PAX ``path`` together with a GNU long name, and global
  PAX headers that rename every member after them;
- data after the end-of-archive marker, and anything after the gzip stream;
- directories with contents, which some readers skip and others parse as headers.

Links, devices, FIFOs and sparse files are refused outright: an sdist needs none of them.
The formats are POSIX ustar with PAX extended headers (what ``tarfile`` writes by default) and
GNU tar (what the Rust ``tar`` crate writes for maturin).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import BinaryIO

from tilsit.dists.errors import (
    ArchiveBomb,
    MalformedArchive,
    MetadataTooLarge,
    UnsafeArchive,
    UnsafeMember,
)
from tilsit.dists.limits import DEFAULT_LIMITS, InflationBudget, Limits, format_size
from tilsit.dists.members import (
    Archive,
    KeepMember,
    Member,
    MemberTree,
    check_member_name,
    keep_nothing,
)
from tilsit.dists.sniff import (
    EOCD_SIZE,
    MAX_COMMENT,
    TAR_BLOCK,
    end_records_reaching_eof,
    tar_checksums,
)

__all__ = ["read_tar_gz"]

_CHUNK = 64 * 1024
_ZERO_BLOCK = bytes(TAR_BLOCK)
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_EXTENDED_HEADER = 1024 * 1024  # PAX records or a GNU long name; real ones are tiny
_UTF8_CHARSET = b"ISO-IR 10646 2000 UTF-8"

_REGULAR = (b"0", b"\0")
_DIRECTORY = b"5"
_PAX = b"x"
_PAX_GLOBAL = b"g"
_GNU_LONG_NAME = b"L"
_REFUSED_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"K": "a link (GNU long link name)",
    b"S": "a sparse file",
    b"D": "a GNU dump directory",
    b"M": "a multi-volume continuation",
    b"N": "a GNU old long name",
    b"V": "a volume label",
}


def read_tar_gz(
    path: Path, limits: Limits = DEFAULT_LIMITS, keep: KeepMember = keep_nothing
) -> Archive:
    """Read and check every member of the ``.tar.gz`` at ``path``.

    Returns the members in archive order, and the contents of those ``keep`` selects (each at
    most ``limits.max_metadata_size`` bytes). Raises an
    :class:`~tilsit.dists.InvalidDistribution` subclass for anything it will not read.
    """
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        _refuse_zip_polyglot(f, file_size)
        stream = _GzipStream(f, InflationBudget(limits, file_size))
        archive = _read_tar(stream, limits, keep)
        stream.finish()
    return archive


def _refuse_zip_polyglot(f: BinaryIO, file_size: int) -> None:
    """The file must be gzip, and not also a ZIP: one that ends with a ZIP end record is one."""
    if f.read(2) != _GZIP_MAGIC:
        raise MalformedArchive("The file is not gzip-compressed, as a .tar.gz must be.")
    tail_size = min(file_size, EOCD_SIZE + MAX_COMMENT)
    f.seek(file_size - tail_size)
    if end_records_reaching_eof(f.read(tail_size)):
        raise UnsafeArchive(
            "The file is both a gzip-compressed tar archive and a ZIP archive; such polyglots"
            " let different tools see different contents."
        )
    f.seek(0)


class _GzipStream:
    """The inflated bytes of one gzip member, a bounded chunk at a time, every byte counted."""

    def __init__(self, f: BinaryIO, budget: InflationBudget) -> None:
        self._f = f
        self._budget = budget
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing only
        self._buffer = bytearray()

    def _fill(self) -> bool:
        """Inflate one more chunk into the buffer; False once the gzip stream has ended."""
        inflater = self._inflater
        while not inflater.eof:
            pending = inflater.unconsumed_tail or self._f.read(_CHUNK)
            try:
                chunk = inflater.decompress(pending, _CHUNK)
            except zlib.error as exc:
                raise MalformedArchive(f"The gzip stream is corrupt ({exc}).") from exc
            if chunk:
                self._budget.spend(len(chunk))
                self._buffer += chunk
                return True
            if not pending and not inflater.eof:
                raise MalformedArchive("The gzip stream is truncated.")
        return False

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only where the stream ends."""
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_exact(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise MalformedArchive(f"The tar archive is truncated inside {what}.")
        return data

    def skip(self, size: int, what: str) -> None:
        """Inflate and drop ``size`` bytes, holding at most one chunk in memory."""
        while size:
            size -= len(self.read_exact(min(size, _CHUNK), what))

    def rest_is_zeros(self) -> bool:
        """Whether everything left in the stream is zero bytes (tar's end padding)."""
        while True:
            if self._buffer.strip(b"\0"):
                return False
            self._buffer.clear()
            if not self._fill():
                return True

    def finish(self) -> None:
        """The gzip stream must have ended, and nothing may follow it in the file."""
        if self._fill() or self._buffer:
            raise UnsafeArchive("Data follows the end of the tar archive inside the gzip stream.")
        trailing = len(self._inflater.unused_data) + len(self._f.read())
        if trailing:
            raise UnsafeArchive(
                f"{format_size(trailing)} of trailing data follow the gzip stream; data"
                " appended to an archive is refused."
            )


def _read_tar(stream: _GzipStream, limits: Limits, keep: KeepMember) -> Archive:
    """Every header and member of the tar stream, up to its end-of-archive marker."""
    members: list[Member] = []
    kept: dict[str, bytes] = {}
    tree = MemberTree()
    pax: dict[str, bytes] | None = None
    long_name: str | None = None
    extended = False  # an extended header was read, so a member header must follow
    while True:
        block = stream.read(TAR_BLOCK)
        # tarfile refuses both an extended header (even a global one) with no member after
        # it, and an archive with no member at all.
        ended = block in (b"", _ZERO_BLOCK)
        if ended and extended:
            raise MalformedArchive("The tar archive ends with an extended header and no member.")
        if ended and not members:
            raise MalformedArchive("The tar archive has no members.")
        if not block:
            break  # no end-of-archive marker: tolerated, nothing can follow it anyway
        if len(block) < TAR_BLOCK:
            raise MalformedArchive("The tar archive is truncated inside a header.")
        if block == _ZERO_BLOCK:
            # Readers stop at the first zero block (or skip zero blocks and read on), so
            # anything but padding after it would be seen by some and not others.
            if not stream.rest_is_zeros():
                raise UnsafeArchive("Data follows the tar archive's end-of-archive marker.")
            break
        header = _Header(block)
        kind = header.typeflag
        if kind in (_PAX, _PAX_GLOBAL, _GNU_LONG_NAME):
            extended = True
            data = _read_extended(stream, header)
            if kind == _PAX_GLOBAL:
                _check_global_pax(_parse_pax(data))
            elif kind == _PAX:
                if pax is not None:
                    raise UnsafeArchive("Two PAX extended headers precede one tar member.")
                pax = _parse_pax(data)
            else:
                if long_name is not None:
                    raise UnsafeArchive("Two GNU long names precede one tar member.")
                long_name = _decode(data.split(b"\0", 1)[0], "a GNU long name")
            continue
        member = _member(header, pax, long_name)
        pax, long_name, extended = None, None, False
        if len(members) >= limits.max_members:
            raise ArchiveBomb(f"The archive has more than {limits.max_members} members.")
        if member.size > limits.max_member_size:
            raise ArchiveBomb(
                f"Member {member.name!r} is {format_size(member.size)}; this index reads at most"
                f" {format_size(limits.max_member_size)} per member."
            )
        tree.add(member.name, is_dir=member.is_dir)
        members.append(member)
        padded = -(-member.size // TAR_BLOCK) * TAR_BLOCK
        if keep(member.name) and not member.is_dir:
            if member.size > limits.max_metadata_size:
                raise MetadataTooLarge(
                    f"{member.name} is {format_size(member.size)}; this index reads at most"
                    f" {format_size(limits.max_metadata_size)} of metadata."
                )
            kept[member.name] = stream.read_exact(member.size, repr(member.name))
            stream.skip(padded - member.size, repr(member.name))
        else:
            stream.skip(padded, repr(member.name))
    return Archive(tuple(members), kept)


class _Header:
    """The fields of one 512-byte tar header that decide what a member is.

    Every numeric field is checked although only the size is used: ``tarfile`` parses them
    all and, on a bad one past the first member, silently stops reading, so it would see
    fewer members than this reader.
    """

    def __init__(self, block: bytes) -> None:
        magic = block[257:265]
        prefix = _cstring(block[345:500])
        if magic == b"ustar  \0" and prefix:
            # In GNU headers these bytes hold times, but tarfile reads them as a path prefix.
            raise UnsafeArchive(
                "A GNU tar header has data where tarfile reads a name prefix; readers would"
                " disagree about the member's name."
            )
        if magic not in (b"ustar\x0000", b"ustar  \0"):
            raise MalformedArchive("A tar header is neither POSIX ustar nor GNU tar.")
        if _number(block[148:156], "checksum") not in tar_checksums(block):
            raise MalformedArchive("A tar header has a wrong checksum.")
        for what, start, end in _NUMBERS:
            _number(block[start:end], what, negative=True)
        name = _cstring(block[0:100])
        self.raw_name = prefix + b"/" + name if prefix else name
        self.typeflag = block[156:157]
        self.size = _number(block[124:136], "size")


_NUMBERS = (
    ("mode", 100, 108),
    ("uid", 108, 116),
    ("gid", 116, 124),
    ("mtime", 136, 148),
    ("devmajor", 329, 337),
    ("devminor", 337, 345),
)


def _read_extended(stream: _GzipStream, header: _Header) -> bytes:
    if header.size > _MAX_EXTENDED_HEADER:
        raise UnsafeArchive(
            f"A tar extended header declares {format_size(header.size)}; real ones are tiny."
        )
    padded = -(-header.size // TAR_BLOCK) * TAR_BLOCK
    data = stream.read_exact(header.size, "an extended header")
    stream.skip(padded - header.size, "an extended header")
    return data


def _member(header: _Header, pax: dict[str, bytes] | None, long_name: str | None) -> Member:
    """The member a header describes, with its PAX records or GNU long name applied."""
    kind = header.typeflag
    raw_name = header.raw_name.decode("utf-8", "replace")
    if kind in _REFUSED_TYPES:
        raise UnsafeMember(f"Member {raw_name!r} is {_REFUSED_TYPES[kind]}.")
    if kind not in (*_REGULAR, _DIRECTORY):
        raise UnsafeMember(f"Member {raw_name!r} has unknown tar type {kind!r}.")
    name = long_name if long_name is not None else _decode(header.raw_name, "a member name")
    size = header.size
    if pax is not None:
        if any(key.startswith("GNU.sparse.") for key in pax):
            raise UnsafeMember(f"Member {name!r} is a sparse file.")
        if "linkpath" in pax:
            raise UnsafeMember(f"Member {name!r} carries a PAX link path.")
        if pax.get("hdrcharset", _UTF8_CHARSET) != _UTF8_CHARSET:
            raise UnsafeMember(f"Member {name!r} declares a name encoding other than UTF-8.")
        if "path" in pax:
            if long_name is not None:
                raise UnsafeArchive(
                    f"Member {name!r} has both a PAX path and a GNU long name; readers would"
                    " disagree about its name."
                )
            name = _decode(pax["path"], "a PAX path")
        if "size" in pax:
            text = pax["size"]
            if not text.isdigit() or int(text) != header.size:
                raise UnsafeArchive(
                    f"Member {name!r} has a PAX size ({text.decode('latin-1')!r}) that differs"
                    f" from its header's ({header.size}); readers that ignore PAX records would"
                    " read its data as headers."
                )
    # The old "\0" type is a directory when its header name ends in '/', to every reader;
    # tarfile looks at the header name, not at a PAX path or GNU long name.
    is_dir = kind == _DIRECTORY or (kind == b"\0" and header.raw_name.endswith(b"/"))
    if name.endswith("/") and not is_dir:
        raise UnsafeArchive(
            f"Member {name!r} is a regular file whose name ends in '/'; readers would disagree"
            " about whether it is a directory."
        )
    if is_dir and size:
        raise UnsafeArchive(
            f"Directory member {name!r} has {format_size(size)} of contents, which some"
            " readers skip and others read as headers."
        )
    return Member(check_member_name(name, is_dir=is_dir), is_dir, size)


def _parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX records, ``"<length> <key>=<value>\\n"`` each, tiling ``data`` exactly."""
    records: dict[str, bytes] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        length_text = data[position:space] if space > position else b""
        if not length_text.isdigit():
            raise MalformedArchive("A PAX extended header has a malformed record.")
        end = position + int(length_text)
        if end > len(data) or end <= space + 1 or data[end - 1 : end] != b"\n":
            raise MalformedArchive("A PAX extended header has a malformed record length.")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals or not key:
            raise MalformedArchive("A PAX extended header has a record without a key.")
        name = _decode(key, "a PAX key")
        if name in records:
            raise UnsafeArchive(
                f"A PAX extended header gives {name!r} twice; readers would disagree about"
                " which one counts."
            )
        records[name] = value
        position = end
    return records


def _check_global_pax(records: dict[str, bytes]) -> None:
    """A global header changes every member after it; only a comment (git archive) is harmless."""
    for key in records:
        if key != "comment":
            raise UnsafeArchive(
                f"A global PAX header sets {key!r} for every member after it; this index accepts"
                " only a comment there."
            )


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _number(field: bytes, what: str, *, negative: bool = False) -> int:
    """A numeric header field: octal text, or GNU's base-256 (0x80 first; 0xff if negative)."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    if field[0] == 0xFF and negative:
        return int.from_bytes(field[1:], "big") - (1 << (8 * (len(field) - 1)))
    if field[0] & 0x80:
        raise MalformedArchive(f"A tar header has a negative or malformed {what}.")
    text = _cstring(field).strip(b" ")
    if text and all(digit in b"01234567" for digit in text):
        return int(text, 8)
    if not text:
        return 0
    raise MalformedArchive(f"A tar header has a malformed {what} field.")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "replace")
        raise UnsafeMember(f"{what.capitalize()} {shown!r} is not UTF-8.") from None
