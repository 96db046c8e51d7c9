"""Reading a ZIP archive (a wheel) strictly, in memory, without extracting it.

:mod:`.zipdir` reads the central directory; this module checks that every local header says
the same as its central directory entry (name, method, flags, CRC, sizes, data descriptor),
that the entries tile the file from its first byte to the central directory with no gap or
overlap where other data could hide, and then inflates every member, counting real bytes
against the :class:`~tilsit.dists.Limits` and checking each CRC. ``zipfile`` is not used: it
accepts prefixes, trailing data, contradictory headers and more, which is where ZIP
confusion attacks live.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tilsit.dists.errors import (
    ArchiveBomb,
    MalformedArchive,
    MetadataTooLarge,
    UnsafeArchive,
)
from tilsit.dists.limits import DEFAULT_LIMITS, InflationBudget, Limits, format_size
from tilsit.dists.members import Archive, KeepMember, Member, keep_nothing
from tilsit.dists.sniff import TAR_BLOCK, is_tar_header
from tilsit.dists.zipdir import (
    DEFLATED,
    DESCRIPTOR_SIGNATURE,
    EXTRA_ZIP64,
    FLAG_DESCRIPTOR,
    LOCAL_SIGNATURE,
    MAX32,
    EndRecords,
    Entry,
    check_unicode_path,
    describe_gap,
    parse_extra,
    read_at,
    read_central_directory,
    read_end_records,
)

__all__ = ["iter_zip", "read_zip"]

_LOCAL = struct.Struct("<4s5H3L2H")
_CHUNK = 64 * 1024


def read_zip(
    path: Path, limits: Limits = DEFAULT_LIMITS, keep: KeepMember = keep_nothing
) -> Archive:
    """Read and verify every member of the ZIP archive at ``path``.

    Returns the members in central directory order, and the contents of those ``keep`` selects (each at
    most ``limits.max_metadata_size`` bytes). Raises an
    :class:`~tilsit.dists.InvalidDistribution` subclass for anything it will not read.
    """
    with open(path, "rb") as f:
        entries, ordered, data_offsets, budget = _check_structure(f, limits, keep)
        kept = {}
        for entry, data_offset in zip(ordered, data_offsets, strict=True):
            f.seek(data_offset)
            data = _inflate(f, entry, budget, keep=keep(entry.name) and not entry.is_dir)
            if data is not None:
                kept[entry.name] = data
    members = tuple(Member(entry.name, entry.is_dir, entry.size) for entry in entries)
    return Archive(members, kept)


def iter_zip(
    f: BinaryIO, limits: Limits = DEFAULT_LIMITS, want: KeepMember = lambda _name: True
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, contents)`` of the file members of the open ZIP archive ``f`` that
    ``want`` selects, in archive order, one at a time.

    For archives too large to hold at once (an OSV export of 20,000 records): the whole
    structure is checked as :func:`read_zip` checks it before the first member is
    yielded, and each member is inflated, counted against ``limits`` (each at most
    ``limits.max_member_size``) and CRC-checked before it is yielded. Members ``want``
    declines are not inflated, so their contents are not checked. Raises an
    :class:`~tilsit.dists.InvalidDistribution` subclass, possibly after some members were
    yielded: a caller that must refuse the archive whole reads it all before it acts.
    """
    _entries, ordered, data_offsets, budget = _check_structure(f, limits, keep_nothing)
    for entry, data_offset in zip(ordered, data_offsets, strict=True):
        if entry.is_dir or not want(entry.name):
            continue
        f.seek(data_offset)
        data = _inflate(f, entry, budget, keep=True)
        assert data is not None
        yield entry.name, data


def _check_structure(
    f: BinaryIO, limits: Limits, keep: KeepMember
) -> tuple[list[Entry], list[Entry], list[int], InflationBudget]:
    """Check everything but the members' data: the end records, the central directory,
    the declared sizes and every local header. Returns the entries in directory order and
    in file order, where each one's data starts, and the inflation budget to read them."""
    file_size = os.fstat(f.fileno()).st_size
    end = read_end_records(f, file_size)
    _refuse_tar_polyglot(f, file_size)
    entries = read_central_directory(f, end, limits)
    _check_declared_sizes(entries, file_size, limits, keep)
    ordered = sorted(entries, key=lambda entry: entry.offset)
    data_offsets = _check_local_headers(f, ordered, end)
    return entries, ordered, data_offsets, InflationBudget(limits, file_size)


def _refuse_tar_polyglot(f: BinaryIO, file_size: int) -> None:
    """A ZIP whose first block is also a valid tar header reads as a tar archive too."""
    if file_size >= TAR_BLOCK and is_tar_header(read_at(f, 0, TAR_BLOCK, "the first block")):
        raise UnsafeArchive(
            "The file is both a ZIP archive and a tar archive; such polyglots let different"
            " tools see different contents."
        )


def _check_declared_sizes(
    entries: list[Entry], file_size: int, limits: Limits, keep: KeepMember
) -> None:
    """Refuse on the sizes the archive declares, before inflating anything.

    The inflation below counts real bytes and refuses any member that inflates past its
    declared size, so these declared caps also bound the real work.
    """
    total = 0
    for entry in entries:
        total += entry.size
        if entry.size > limits.max_member_size:
            raise ArchiveBomb(
                f"Member {entry.name!r} declares {format_size(entry.size)}; this index reads at"
                f" most {format_size(limits.max_member_size)} per member."
            )
        if limits.is_bomb(entry.size, entry.compressed_size):
            raise ArchiveBomb(
                f"Member {entry.name!r} declares {format_size(entry.size)} compressed into"
                f" {format_size(entry.compressed_size)}, a ratio above {limits.bomb_ratio:g}"
                " to 1: it looks like a decompression bomb."
            )
        if keep(entry.name) and entry.size > limits.max_metadata_size:
            raise MetadataTooLarge(
                f"{entry.name} is {format_size(entry.size)}; this index reads at most"
                f" {format_size(limits.max_metadata_size)} of metadata."
            )
    if total > limits.max_total_inflated:
        raise ArchiveBomb(
            f"The archive declares {format_size(total)} of contents; this index reads at most"
            f" {format_size(limits.max_total_inflated)}."
        )
    if limits.is_bomb(total, file_size):
        raise ArchiveBomb(
            f"The archive declares {format_size(total)} of contents in a"
            f" {format_size(file_size)} file, a ratio above {limits.bomb_ratio:g} to 1: it looks"
            " like a decompression bomb."
        )


def _check_local_headers(f: BinaryIO, ordered: list[Entry], end: EndRecords) -> list[int]:
    """Each local header must match its entry, and the entries must tile the file exactly.

    The first entry starts at offset 0, each next one where the previous one (with its data
    descriptor) ends, and the central directory where the last one ends: no byte of the file
    lies outside a record, so nothing can hide between them. Returns where each entry's data
    starts.
    """
    position = 0
    data_offsets = []
    for entry in ordered:
        if entry.offset < position:
            raise UnsafeArchive(
                f"The local header of {entry.label} at offset {entry.offset} overlaps the entry"
                f" before it, which ends at {position}."
            )
        if entry.offset >= end.cd_offset:
            raise MalformedArchive(
                f"The central directory puts {entry.label} at offset {entry.offset}, past the"
                " entries' data."
            )
        if entry.offset > position:
            raise UnsafeArchive(
                f"{describe_gap(f, position, entry.offset)} lie before the local header of"
                f" {entry.label}."
            )
        data_offset, position = _check_local_header(f, entry, end.cd_offset)
        data_offsets.append(data_offset)
    if position > end.cd_offset:
        raise UnsafeArchive(
            f"The last entry ends at offset {position}, inside the central directory, which"
            f" starts at {end.cd_offset}."
        )
    if position < end.cd_offset:
        raise UnsafeArchive(
            f"{describe_gap(f, position, end.cd_offset)} lie between the last entry and the"
            " central directory."
        )
    return data_offsets


def _check_local_header(f: BinaryIO, entry: Entry, cd_offset: int) -> tuple[int, int]:
    """Check one local header (and data descriptor) against ``entry``, before ``cd_offset``.

    Returns where the entry's data starts and where the entry ends.
    """
    header = read_at(f, entry.offset, _LOCAL.size, f"the local header of {entry.label}")
    fields = _LOCAL.unpack(header)
    sig, _needed, flags, method, _time, _date, crc, compressed, size, name_length, extra_length = (
        fields
    )
    if sig != LOCAL_SIGNATURE:
        raise MalformedArchive(
            f"The central directory puts {entry.label} at offset {entry.offset}, where there is"
            " no local file header."
        )
    variable = read_at(
        f,
        entry.offset + _LOCAL.size,
        name_length + extra_length,
        f"the local header of {entry.label}",
    )
    raw_name = variable[:name_length]
    if raw_name != entry.raw_name:
        shown = raw_name.decode("utf-8", "replace")
        raise UnsafeArchive(
            f"The local header at offset {entry.offset} names {shown!r}, but the central"
            f" directory names it {entry.name!r}."
        )
    where = f"the local header of {entry.label}"
    extras = parse_extra(variable[name_length:], where)
    check_unicode_path(extras, raw_name.decode("utf-8", "replace"), where.capitalize())
    if method != entry.method:
        raise UnsafeArchive(
            f"The local header of {entry.label} gives compression method {method}, but the"
            f" central directory gives {entry.method}."
        )
    zip64 = extras.get(EXTRA_ZIP64)
    if zip64 is not None:
        if len(zip64) != 16:
            raise UnsafeArchive(
                f"The ZIP64 extra field in {where} is {len(zip64)} bytes; in a local header it"
                " must hold both sizes (16 bytes)."
            )
        wide_size, wide_compressed = struct.unpack("<QQ", zip64)
        for label, value, wide in (
            ("size", size, wide_size),
            ("compressed size", compressed, wide_compressed),
        ):
            if value not in (MAX32, wide):
                raise UnsafeArchive(
                    f"{where.capitalize()} gives two different {label}s: {value} in the header"
                    f" and {wide} in its ZIP64 extra field."
                )
        size, compressed = wide_size, wide_compressed
    elif MAX32 in (size, compressed):
        raise UnsafeArchive(f"{where.capitalize()} marks a size as ZIP64 but has no ZIP64 field.")
    if flags != entry.flags:
        raise UnsafeArchive(
            f"The local header of {entry.label} has general purpose flags 0x{flags:04x}, but"
            f" the central directory has 0x{entry.flags:04x}; readers would disagree about"
            " whether a data descriptor follows its data."
        )
    data_offset = entry.offset + _LOCAL.size + name_length + extra_length
    data_end = data_offset + entry.compressed_size
    if data_end > cd_offset:
        raise UnsafeArchive(
            f"The data of {entry.label} runs past the start of the central directory; readers"
            " would disagree about where it ends."
        )
    local = {"CRC": crc, "compressed size": compressed, "size": size}
    central = {"CRC": entry.crc, "compressed size": entry.compressed_size, "size": entry.size}
    end = data_end
    if flags & FLAG_DESCRIPTOR:
        # The header may leave these zero, to be given by the descriptor after the data.
        local = {label: value or central[label] for label, value in local.items()}
        end = _check_descriptor(f, entry, data_end, wide=zip64 is not None)
    for label, value in local.items():
        if value != central[label]:
            raise UnsafeArchive(
                f"The local header of {entry.label} gives the {label} as {value}, but the central"
                f" directory gives {central[label]}."
            )
    return data_offset, end


def _check_descriptor(f: BinaryIO, entry: Entry, offset: int, *, wide: bool) -> int:
    """Check the data descriptor after ``entry``'s data; return where it ends.

    Its signature is optional, so a descriptor whose CRC happens to equal the signature is
    tried both ways. With a ZIP64 local header, its sizes are 8 bytes each.
    """
    layout = struct.Struct("<LQQ" if wide else "<LLL")
    f.seek(offset)
    data = f.read(4 + layout.size)
    readings = []
    if data.startswith(DESCRIPTOR_SIGNATURE) and len(data) == 4 + layout.size:
        readings.append((layout.unpack_from(data, 4), offset + 4 + layout.size))
    if len(data) >= layout.size:
        readings.append((layout.unpack_from(data), offset + layout.size))
    if not readings:
        raise MalformedArchive(
            f"The archive is truncated: the data descriptor of {entry.label} is cut off."
        )
    expected = (entry.crc, entry.compressed_size, entry.size)
    for values, end in readings:
        if values == expected:
            return end
    (crc, compressed, size), _end = readings[0]
    raise UnsafeArchive(
        f"The data descriptor of {entry.label} gives CRC {crc:08x}, compressed size"
        f" {compressed} and size {size}, but the central directory gives CRC {entry.crc:08x},"
        f" {entry.compressed_size} and {entry.size}."
    )


def _inflate(f: BinaryIO, entry: Entry, budget: InflationBudget, *, keep: bool) -> bytes | None:
    """Inflate one member from ``f``'s position, checking its size and CRC; return it if kept.

    Bytes are counted as they come out, so a member that inflates past its declared size is
    stopped at the first chunk over, whatever it declared.
    """
    remaining = entry.compressed_size
    produced = 0
    crc = 0
    kept = bytearray() if keep else None

    def take(chunk: bytes) -> None:
        nonlocal produced, crc
        produced += len(chunk)
        if produced > entry.size:
            raise UnsafeArchive(
                f"{entry.label.capitalize()} inflates to more than its declared"
                f" {format_size(entry.size)}."
            )
        budget.spend(len(chunk))
        crc = zlib.crc32(chunk, crc)
        if kept is not None:
            kept.extend(chunk)

    def read_compressed() -> bytes:
        nonlocal remaining
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            raise MalformedArchive(f"The archive is truncated inside {entry.label}.")
        remaining -= len(chunk)
        return chunk

    if entry.method == DEFLATED and not (entry.compressed_size == 0 and entry.size == 0):
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while not inflater.eof:
                if inflater.unconsumed_tail:
                    pending = inflater.unconsumed_tail
                elif remaining:
                    pending = read_compressed()
                else:
                    pending = b""  # all input given: only output zlib still holds may come
                chunk = inflater.decompress(pending, _CHUNK)
                if not chunk and not pending and not inflater.eof:
                    raise MalformedArchive(
                        f"The compressed data of {entry.label} ends before its deflate stream does."
                    )
                take(chunk)
        except zlib.error as exc:
            raise MalformedArchive(
                f"The compressed data of {entry.label} is corrupt ({exc})."
            ) from exc
        if remaining or inflater.unused_data or inflater.unconsumed_tail:
            raise UnsafeArchive(
                f"The deflate stream of {entry.label} ends before its declared compressed size;"
                " readers would disagree about the bytes after it."
            )
    else:
        if entry.compressed_size != entry.size:
            raise UnsafeArchive(
                f"Stored {entry.label} declares a compressed size of {entry.compressed_size} but"
                f" a size of {entry.size}; stored data must be the same size."
            )
        while remaining:
            take(read_compressed())
    if produced != entry.size:
        raise UnsafeArchive(
            f"{entry.label.capitalize()} inflates to {produced} bytes, not its declared"
            f" {entry.size}; readers that trust the declared size would read other contents."
        )
    if crc != entry.crc:
        raise MalformedArchive(
            f"The CRC of {entry.label} is {crc:08x}, not the {entry.crc:08x} it declares."
        )
    return bytes(kept) if kept is not None else None
