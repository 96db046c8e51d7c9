"""The end of a ZIP archive: its end records and central directory, read strictly.

A ZIP archive says twice what it holds: once in the central directory at its end, once in a
local header before each member's data. Readers differ in which they trust, how they find
the end record, and how they treat ZIP64 records, prefixes, comments and extra fields; an
archive that exploits those differences installs one thing while a scanner sees another.
This module reads the end and accepts only one reading: the end record must end the file,
be the only one that could, and agree with the ZIP64 records; the central directory must
fill exactly the space between the entries and the end records. :mod:`.zipread` then checks
each local header against its central directory entry. The reference is PKWARE's APPNOTE.
"""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO

from tilsit.dists.errors import ArchiveBomb, MalformedArchive, UnsafeArchive, UnsafeMember
from tilsit.dists.limits import Limits, format_size
from tilsit.dists.members import MemberTree, check_member_name
from tilsit.dists.sniff import EOCD_SIZE, MAX_COMMENT, end_records_reaching_eof

__all__ = [
    "DEFLATED",
    "DESCRIPTOR_SIGNATURE",
    "EXTRA_ZIP64",
    "FLAG_DESCRIPTOR",
    "LOCAL_SIGNATURE",
    "MAX32",
    "STORED",
    "EndRecords",
    "Entry",
    "check_unicode_path",
    "describe_gap",
    "parse_extra",
    "read_at",
    "read_central_directory",
    "read_end_records",
]

MAX16 = 0xFFFF
MAX32 = 0xFFFFFFFF  # in a classic field: "the value is in the ZIP64 record"

LOCAL_SIGNATURE = b"PK\x03\x04"
CENTRAL_SIGNATURE = b"PK\x01\x02"
EOCD_SIGNATURE = b"PK\x05\x06"
ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_SIGNATURES = {
    LOCAL_SIGNATURE: "a local file header",
    CENTRAL_SIGNATURE: "a central directory entry",
    EOCD_SIGNATURE: "an end of central directory record",
    ZIP64_EOCD_SIGNATURE: "a ZIP64 end of central directory record",
    ZIP64_LOCATOR_SIGNATURE: "a ZIP64 end of central directory locator",
    DESCRIPTOR_SIGNATURE: "a data descriptor",
}

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_V1_SIZE = 44  # the record's size field: its length after the first 12 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_UTF8 = 0x0800
# Deflate's speed hints (bits 1-2), data descriptor, UTF-8 names. Anything else (encryption,
# patch data, masked headers, reserved bits) is a feature readers support unevenly.
_ALLOWED_FLAGS = 0x0002 | 0x0004 | FLAG_DESCRIPTOR | FLAG_UTF8

STORED = 0
DEFLATED = 8
_MAX_NEEDED_VERSION = 63  # zipfile refuses archives that say they need a newer reader

_GAP_PEEK = 64 * 1024  # how much of unexplained data to search for hidden records

EXTRA_ZIP64 = 0x0001
EXTRA_UNICODE_PATH = 0x7075  # Info-ZIP's second name for an entry


def read_at(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    """``size`` bytes at ``offset``, or :class:`MalformedArchive` naming ``what`` is cut off."""
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise MalformedArchive(
            f"The archive is truncated: {what} at offset {offset} runs past the end of the file."
        )
    return data


def describe_gap(f: BinaryIO, start: int, end: int) -> str:
    """How much unexplained data lies from ``start`` to ``end``, and any ZIP records in it."""
    f.seek(start)
    data = f.read(min(end - start, _GAP_PEEK))
    names = [name for signature, name in _SIGNATURES.items() if signature in data]
    hidden = f" (they contain {' and '.join(names)})" if names else ""
    return f"{format_size(end - start)} of unexplained data{hidden}"


@dataclass(frozen=True, slots=True)
class EndRecords:
    """Where the end records put the central directory, and where it must stop."""

    entries: int
    cd_offset: int
    cd_size: int
    cd_end: int  # the offset of the ZIP64 end record if there is one, else of the classic one


@dataclass(frozen=True, slots=True)
class Entry:
    """One central directory entry, after its ZIP64 extra field is applied."""

    name: str  # checked by check_member_name, no trailing slash
    raw_name: bytes
    is_dir: bool
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int  # of the local header

    @property
    def label(self) -> str:
        return f"member {self.name!r}"


def read_end_records(f: BinaryIO, file_size: int) -> EndRecords:
    """Find the one end record that ends the file, check it and any ZIP64 records."""
    tail_size = min(file_size, EOCD_SIZE + MAX_COMMENT)
    tail_start = file_size - tail_size
    tail = read_at(f, tail_start, tail_size, "the end of the file")
    found = end_records_reaching_eof(tail)
    if not found:
        raise _no_end_record(tail)
    if len(found) > 1:
        raise UnsafeArchive(
            f"The file ends with {len(found)} ZIP end of central directory records, one inside"
            " another's comment (an archive hidden in an archive), so readers would disagree"
            " about what it contains."
        )
    eocd_offset = tail_start + found[0]
    fields = _EOCD.unpack_from(tail, found[0])
    _sig, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, _length = fields
    comment = tail[found[0] + EOCD_SIZE :]
    for signature, name in _SIGNATURES.items():
        if signature in comment:
            raise UnsafeArchive(
                f"The archive comment contains the signature of {name}; readers that search"
                " for the end of the archive would find a different one."
            )
    _refuse_prefix(f, entries)
    zip64 = _read_zip64_end(f, eocd_offset)
    cd_end = eocd_offset
    if zip64 is not None:
        cd_end = zip64.offset
        classic = {
            "disk number": (disk, zip64.disk, MAX16),
            "central directory's disk": (cd_disk, zip64.cd_disk, MAX16),
            "number of entries on this disk": (disk_entries, zip64.disk_entries, MAX16),
            "number of entries": (entries, zip64.entries, MAX16),
            "central directory size": (cd_size, zip64.cd_size, MAX32),
            "central directory offset": (cd_offset, zip64.cd_offset, MAX32),
        }
        for label, (value, wide, marker) in classic.items():
            # A classic field either holds the value itself or says "see the ZIP64 record".
            if value not in (marker, wide):
                raise UnsafeArchive(
                    f"The ZIP64 end record gives the {label} as {wide} but the classic end"
                    f" record gives {value}; readers would disagree about the entries."
                )
        disk, cd_disk, disk_entries = zip64.disk, zip64.cd_disk, zip64.disk_entries
        entries, cd_size, cd_offset = zip64.entries, zip64.cd_size, zip64.cd_offset
    if disk != 0 or cd_disk != 0 or disk_entries != entries:
        raise UnsafeArchive("The archive claims to span several disks; split archives are refused.")
    if cd_offset + cd_size > cd_end:
        raise MalformedArchive(
            f"The end record puts the central directory at offsets {cd_offset} to"
            f" {cd_offset + cd_size}, past the end records that start at {cd_end}."
        )
    if cd_offset + cd_size < cd_end:
        f.seek(cd_offset + cd_size)
        if f.read(4) == ZIP64_EOCD_SIGNATURE:
            raise UnsafeArchive(
                "The archive has a ZIP64 end of central directory record without the locator"
                " that must follow it; readers would disagree about whether it counts."
            )
        raise UnsafeArchive(
            f"{describe_gap(f, cd_offset + cd_size, cd_end)} lie between the central directory"
            " and the end record."
        )
    return EndRecords(entries, cd_offset, cd_size, cd_end)


def _no_end_record(tail: bytes) -> Exception:
    """Why no end record ends the file: none at all, trailing data, or a truncated comment."""
    position = tail.rfind(EOCD_SIGNATURE)
    while position >= 0 and position + EOCD_SIZE > len(tail):
        position = tail.rfind(EOCD_SIGNATURE, 0, position)
    if position < 0:
        return MalformedArchive("The file is not a ZIP archive: it has no end record.")
    end = position + EOCD_SIZE + int.from_bytes(tail[position + 20 : position + 22], "little")
    if end > len(tail):
        return MalformedArchive(
            "The ZIP archive is truncated: its end record declares a comment longer than the"
            " rest of the file."
        )
    return UnsafeArchive(
        f"{format_size(len(tail) - end)} of trailing data follow the ZIP end record; data"
        " appended to an archive is refused."
    )


def _refuse_prefix(f: BinaryIO, entries: int) -> None:
    """The file must start with the first local header, or the end records of an empty ZIP.

    Readers that allow a prefix (self-extracting archives) shift every offset by its length,
    and readers that do not see other entries, or none.
    """
    head = read_at(f, 0, 4, "the first header")
    if head == LOCAL_SIGNATURE or (
        entries in (0, MAX16) and head in (EOCD_SIGNATURE, ZIP64_EOCD_SIGNATURE)
    ):
        return
    f.seek(0)
    start = f.read(64 * 1024).find(LOCAL_SIGNATURE)
    amount = format_size(start) if start > 0 else "data"
    raise UnsafeArchive(
        f"The file does not start with a ZIP local header: {amount} of other data come first"
        " (a prefixed or self-extracting archive), which makes its offsets ambiguous."
    )


@dataclass(frozen=True, slots=True)
class _Zip64End:
    offset: int
    disk: int
    cd_disk: int
    disk_entries: int
    entries: int
    cd_size: int
    cd_offset: int


def _read_zip64_end(f: BinaryIO, eocd_offset: int) -> _Zip64End | None:
    """The ZIP64 end record, if its locator sits right before the classic end record.

    The record must be version 1 (no extensible data) and end exactly at its locator, so that
    readers that find it through the locator and readers that search for it agree.
    """
    locator_offset = eocd_offset - _ZIP64_LOCATOR.size
    if locator_offset < 0:
        return None
    locator = read_at(f, locator_offset, _ZIP64_LOCATOR.size, "the ZIP64 locator")
    sig, record_disk, offset, disks = _ZIP64_LOCATOR.unpack(locator)
    if sig != ZIP64_LOCATOR_SIGNATURE:
        return None
    if record_disk != 0 or disks > 1:
        raise UnsafeArchive("The archive claims to span several disks; split archives are refused.")
    record = b""
    if offset < locator_offset:  # checked first: the offset is any 64-bit value
        f.seek(offset)
        record = f.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or not record.startswith(ZIP64_EOCD_SIGNATURE):
        raise UnsafeArchive(
            f"The ZIP64 end of central directory locator points to offset {offset}, where"
            " there is no ZIP64 end of central directory record."
        )
    fields = _ZIP64_EOCD.unpack(record)
    if fields[1] != _ZIP64_EOCD_V1_SIZE:
        raise UnsafeArchive(
            f"The ZIP64 end of central directory record declares a size of {fields[1]} bytes,"
            f" not {_ZIP64_EOCD_V1_SIZE}: it carries extensible data, which readers skip"
            " differently."
        )
    record_end = offset + _ZIP64_EOCD.size
    if record_end > locator_offset:
        raise UnsafeArchive(
            "The ZIP64 end of central directory record overlaps its locator; readers would"
            " disagree about the archive's layout."
        )
    if record_end < locator_offset:
        raise UnsafeArchive(
            f"{describe_gap(f, record_end, locator_offset)} lie between the ZIP64 end of"
            " central directory record and its locator."
        )
    return _Zip64End(offset, *fields[4:])


def read_central_directory(f: BinaryIO, end: EndRecords, limits: Limits) -> list[Entry]:
    """Parse exactly ``end.entries`` entries, which must fill the central directory exactly."""
    if end.entries > limits.max_members:
        raise ArchiveBomb(
            f"The archive has {end.entries} members; this index reads at most {limits.max_members}."
        )
    f.seek(end.cd_offset)
    limit = end.cd_offset + end.cd_size
    position = end.cd_offset
    tree = MemberTree()
    entries = []
    for index in range(end.entries):
        if position + _CENTRAL.size > limit:
            raise UnsafeArchive(
                f"Central directory entry {index + 1} runs past the central directory's"
                " declared size; readers would disagree about where it ends."
            )
        fixed = f.read(_CENTRAL.size)
        fields = _CENTRAL.unpack(fixed)
        if fields[0] != CENTRAL_SIGNATURE:
            raise MalformedArchive(
                f"Central directory entry {index + 1} at offset {position} has no valid signature."
            )
        name_length, extra_length, comment_length = fields[10:13]
        position += _CENTRAL.size + name_length + extra_length + comment_length
        if position > limit:
            raise UnsafeArchive(
                f"Central directory entry {index + 1} runs past the central directory's"
                " declared size; readers would disagree about where it ends."
            )
        raw_name = f.read(name_length)
        extra = f.read(extra_length)
        f.read(comment_length)
        entry = _parse_entry(fields, raw_name, extra)
        tree.add(entry.name, is_dir=entry.is_dir)
        entries.append(entry)
    if position != limit:
        entries_text = "1 entry fills" if end.entries == 1 else f"{end.entries} entries fill"
        raise UnsafeArchive(
            f"The central directory declares {format_size(end.cd_size)}, but its {entries_text}"
            f" only {format_size(position - end.cd_offset)}, leaving"
            f" {describe_gap(f, position, limit)}."
        )
    return entries


def _decode_name(raw_name: bytes, flags: int) -> str:
    """A member name: UTF-8 when the entry says so, else plain ASCII.

    Without the UTF-8 flag, readers decode a name as CP437, as the locale's encoding or as
    UTF-8, and so read different names; only ASCII reads the same everywhere.
    """
    try:
        if flags & FLAG_UTF8:
            return raw_name.decode("utf-8")
        return raw_name.decode("ascii")
    except UnicodeDecodeError:
        shown = raw_name.decode("latin-1")
        if flags & FLAG_UTF8:
            raise UnsafeMember(f"Member name {shown!r} is flagged UTF-8 but is not.") from None
        raise UnsafeMember(
            f"Member name {shown!r} is not ASCII and its entry lacks the UTF-8 flag, so readers"
            " would decode it differently."
        ) from None


def parse_extra(data: bytes, where: str) -> dict[int, bytes]:
    """The extra fields of one header, by id; they must tile the extra data exactly, once each."""
    fields: dict[int, bytes] = {}
    position = 0
    while position < len(data):
        if len(data) - position < 4:
            raise MalformedArchive(
                f"The extra field data of {where} ends with {len(data) - position} stray bytes,"
                " too few for a field header."
            )
        kind, size = struct.unpack_from("<HH", data, position)
        position += 4
        if position + size > len(data):
            raise MalformedArchive(
                f"Extra field 0x{kind:04x} of {where} declares {size} bytes but only"
                f" {len(data) - position} remain."
            )
        if kind in fields:
            raise UnsafeArchive(
                f"Extra field 0x{kind:04x} appears twice in {where}; readers would disagree"
                " about which one counts."
            )
        fields[kind] = data[position : position + size]
        position += size
    return fields


def check_unicode_path(fields: dict[int, bytes], name: str, where: str) -> None:
    """An Info-ZIP Unicode Path field may only repeat the entry's own name."""
    value = fields.get(EXTRA_UNICODE_PATH)
    if value is None:
        return
    if len(value) < 5 or value[0] != 1 or value[5:] != name.encode("utf-8"):
        shown = value[5:].decode("utf-8", "replace")
        raise UnsafeArchive(
            f"{where} carries an Info-ZIP Unicode Path extra field naming {shown!r}, not"
            f" {name!r}; readers that honour it would see another name."
        )


def _parse_entry(fields: tuple[int, ...], raw_name: bytes, extra: bytes) -> Entry:
    (_sig, _made_by, needed, flags, method, _time, _date, crc, compressed, size) = fields[:10]
    (disk, _internal, external, offset) = fields[13:]
    name = _decode_name(raw_name, flags)
    where = f"the central directory entry for {name!r}"
    if flags & FLAG_ENCRYPTED:
        raise UnsafeArchive(f"Member {name!r} is encrypted.")
    if flags & ~_ALLOWED_FLAGS:
        raise UnsafeArchive(
            f"Member {name!r} uses general purpose flags 0x{flags:04x}, which this index does"
            " not accept (only UTF-8 names and data descriptors)."
        )
    if needed & 0xFF > _MAX_NEEDED_VERSION:
        raise UnsafeArchive(
            f"Member {name!r} needs ZIP version {(needed & 0xFF) / 10:.1f} to extract; Python's"
            " zipfile, which pip uses, reads up to 6.3."
        )
    if method not in (STORED, DEFLATED):
        raise UnsafeArchive(
            f"Member {name!r} uses compression method {method}; only stored (0) and deflate (8)"
            " are accepted, as pip and uv can read no others."
        )
    extras = parse_extra(extra, where)
    check_unicode_path(extras, name, where.capitalize())
    zip64 = extras.get(EXTRA_ZIP64)
    marked = [value == MAX32 for value in (size, compressed, offset)]
    expected = 8 * sum(marked) + (4 if disk == MAX16 else 0)
    if zip64 is None and expected:
        raise UnsafeArchive(
            f"{where.capitalize()} marks a value as stored in a ZIP64 extra field, but has none."
        )
    if zip64 is not None:
        if len(zip64) != expected:
            raise UnsafeArchive(
                f"The ZIP64 extra field of {where} is {len(zip64)} bytes, but the entry marks"
                f" {sum(marked)} values as stored there ({expected} bytes); readers would"
                " disagree about the member's sizes."
            )
        values = list(struct.unpack_from(f"<{sum(marked)}Q", zip64))
        size, compressed, offset = (
            values.pop(0) if flag else value
            for flag, value in zip(marked, (size, compressed, offset), strict=True)
        )
        if disk == MAX16:
            (disk,) = struct.unpack_from("<L", zip64, expected - 4)
    if disk != 0:
        raise UnsafeArchive("The archive claims to span several disks; split archives are refused.")
    is_dir = name.endswith("/")
    # The high 16 bits are a Unix mode when the entry was made on Unix. They are read whatever
    # host the entry claims, because some extractors apply them regardless.
    kind = stat.S_IFMT(external >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeMember(f"Member {name!r} is a symbolic link.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeMember(f"Member {name!r} is a device, FIFO or socket, not a file.")
    if (kind == stat.S_IFDIR and not is_dir) or (kind == stat.S_IFREG and is_dir):
        raise UnsafeArchive(
            f"Member {name!r} has a directory mode without a trailing slash, or a file mode"
            " with one; readers would disagree about whether it is a directory."
        )
    if is_dir and size:
        raise UnsafeArchive(f"Directory member {name!r} has contents.")
    return Entry(
        name=check_member_name(name, is_dir=is_dir),
        raw_name=raw_name,
        is_dir=is_dir,
        flags=flags,
        method=method,
        crc=crc,
        compressed_size=compressed,
        size=size,
        offset=offset,
    )
