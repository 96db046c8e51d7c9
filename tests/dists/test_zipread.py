"""The strict ZIP reader: what it reads, and each kind of archive it refuses, and why."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.dists.rawzip import (
    DIR_MODE,
    STORED,
    RawEntry,
    build_zip,
    deflate,
    extra_field,
)
from tilsit.dists import (
    ArchiveBomb,
    InvalidDistribution,
    Limits,
    MalformedArchive,
    MetadataTooLarge,
    UnsafeArchive,
    UnsafeMember,
)
from tilsit.dists.members import Archive
from tilsit.dists.zipread import read_zip

MiB = 1024 * 1024


DEFAULT = Limits()


def read(tmp_path: Path, data: bytes, limits: Limits = DEFAULT) -> Archive:
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    return read_zip(path, limits, keep=lambda _name: True)


def descriptor(entry: RawEntry, *, signature: bool = True, wide: bool = False) -> bytes:
    layout = "<LQQ" if wide else "<LLL"
    values = struct.pack(layout, zlib.crc32(entry.data), len(entry.compressed()), len(entry.data))
    return (b"PK\x07\x08" if signature else b"") + values


def streamed(name: str, data: bytes, **kw: object) -> RawEntry:
    """An entry written the way a streaming writer does: sizes in a data descriptor."""
    entry = RawEntry(name, data, flags=0x08, **kw)  # type: ignore[arg-type]
    entry.local = {"crc": 0, "compressed_size": 0, "size": 0}
    if "descriptor" not in kw:
        entry.descriptor = descriptor(entry)
    return entry


def zipfile_archive(**options: object) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir("pkg")
        archive.writestr("pkg/a.py", b"a = 1\n" * 100)
        archive.writestr("pkg/b.txt", b"stored", compress_type=zipfile.ZIP_STORED)
        with archive.open("pkg/big.bin", "w", force_zip64=bool(options.get("zip64"))) as member:
            member.write(b"\0" * 1000)
    return buffer.getvalue()


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


def streamed_zipfile_archive() -> bytes:
    """What zipfile writes to a pipe: every entry with a data descriptor."""
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/", b"")
        archive.writestr("pkg/a.py", b"a = 1\n" * 100)
        archive.writestr("pkg/empty", b"")
    return bytes(sink.data)


# ---------------------------------------------------------------------------------------------
# Archives the reader must read.

READABLE = {
    "zipfile deflated, stored and a directory": zipfile_archive(),
    "zipfile with a forced ZIP64 local header": zipfile_archive(zip64=True),
    "zipfile streamed with data descriptors": streamed_zipfile_archive(),
    "empty archive": build_zip([]),
    "stored member": build_zip([RawEntry("a.txt", b"hello", method=STORED)]),
    "deflated member": build_zip([RawEntry("a.txt", b"hello" * 100)]),
    "UTF-8 name with the UTF-8 flag": build_zip([RawEntry("café.txt", b"x", flags=0x800)]),
    "directory entry": build_zip(
        [RawEntry("pkg/", method=STORED, external_attr=DIR_MODE), RawEntry("pkg/a", b"a")]
    ),
    "descriptor with signature": build_zip([streamed("a", b"hello")]),
    "descriptor without signature": build_zip(
        [
            RawEntry(
                "a",
                b"hello",
                flags=0x08,
                local={"crc": 0, "compressed_size": 0, "size": 0},
                descriptor=descriptor(RawEntry("a", b"hello"), signature=False),
            )
        ]
    ),
    "descriptor keeping the sizes in the local header too": build_zip(
        [RawEntry("a", b"hello", flags=0x08, descriptor=descriptor(RawEntry("a", b"hello")))]
    ),
    "archive comment": build_zip([RawEntry("a", b"a")], comment=b"built by hand"),
    "consistent ZIP64 end records": build_zip([RawEntry("a", b"a")], zip64=True),
    "empty deflated file with no compressed bytes": build_zip([RawEntry("a", payload=b"")]),
    "Info-ZIP Unicode Path repeating the name": build_zip(
        [
            RawEntry(
                "a.txt",
                b"a",
                extra=extra_field(
                    0x7075, b"\x01" + struct.pack("<L", zlib.crc32(b"a.txt")) + b"a.txt"
                ),
            )
        ]
    ),
}


@pytest.mark.parametrize("data", READABLE.values(), ids=READABLE.keys())
def test_reads(tmp_path: Path, data: bytes) -> None:
    archive = read(tmp_path, data)
    with zipfile.ZipFile(io.BytesIO(data)) as reference:
        expected = {
            info.filename.rstrip("/"): reference.read(info) for info in reference.infolist()
        }
    assert {m.name for m in archive.members} == set(expected)
    files = {name: data for name, data in expected.items() if name in archive.kept}
    assert dict(archive.kept) == files


def test_members_in_central_directory_order_with_sizes(tmp_path: Path) -> None:
    data = build_zip(
        [RawEntry("b/", method=STORED, external_attr=DIR_MODE), RawEntry("b/x", b"12")]
    )
    archive = read(tmp_path, data)
    assert [(m.name, m.is_dir, m.size) for m in archive.members] == [
        ("b", True, 0),
        ("b/x", False, 2),
    ]


def test_keeps_only_what_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(build_zip([RawEntry("a", b"A"), RawEntry("b", b"B")]))
    assert dict(read_zip(path, keep=lambda name: name == "b").kept) == {"b": b"B"}
    assert dict(read_zip(path).kept) == {}


# ---------------------------------------------------------------------------------------------
# Archives the reader must refuse: (archive, exception class, words the reason must contain).

A = RawEntry  # short, for the table
HOSTILE: dict[str, tuple[bytes, type[InvalidDistribution], str]] = {
    # Not a ZIP, or not only a ZIP.
    "not a zip": (b"hello world, this is not a zip at all", MalformedArchive, "not a ZIP"),
    "empty file": (b"", MalformedArchive, "not a ZIP"),
    "prefix before the first entry": (
        build_zip([A("a", b"a")], prefix=b"#!/bin/sh\nexit 0\n"),
        UnsafeArchive,
        "does not start with a ZIP local header",
    ),
    "trailing data after the end record": (
        build_zip([A("a", b"a")], suffix=b"junk"),
        UnsafeArchive,
        "4 bytes of trailing data",
    ),
    "comment longer than the file": (
        build_zip([A("a", b"a")], comment=b"abc")[:-2],
        MalformedArchive,
        "comment longer than the rest",
    ),
    "archive appended in the comment": (
        build_zip([A("a", b"a")], comment=build_zip([A("b", b"b")])),
        UnsafeArchive,
        "2 ZIP end of central directory records",
    ),
    "end record signature in the comment": (
        build_zip([A("a", b"a")], comment=b"PK\x05\x06 fake"),
        UnsafeArchive,
        "comment contains the signature",
    ),
    # Layout: every byte must belong to a record.
    "data between central directory and end record": (
        build_zip([A("a", b"a")], before_end=b"hidden"),
        UnsafeArchive,
        "between the central directory and the end record",
    ),
    "hidden local entry before the central directory": (
        build_zip([A("a", b"a")], between=build_zip([A("evil.py", b"x")])[:40]),
        UnsafeArchive,
        "contain a local file header",
    ),
    "central directory size too big": (
        build_zip([A("a", b"a")], before_end=b"xx", end={"cd_size": 49}),
        UnsafeArchive,
        "declares 49 bytes",
    ),
    "central directory size too small": (
        build_zip([A("a", b"a")], end={"cd_size": 40}),
        UnsafeArchive,
        "between the central directory and the end record",
    ),
    "entry count lower than the entries": (
        build_zip([A("a", b"a"), A("b", b"b")], end={"entries": 1, "disk_entries": 1}),
        UnsafeArchive,
        "its 1 entry fills only",
    ),
    "split archive": (
        build_zip([A("a", b"a")], end={"disk": 1}),
        UnsafeArchive,
        "several disks",
    ),
    "gap between two entries": (
        build_zip([A("a", b"a", descriptor=b"XXXX"), A("b", b"b")]),
        UnsafeArchive,
        "4 bytes of unexplained data lie before the local header of member 'b'",
    ),
    "two entries sharing one local header": (
        build_zip([A("a", b"a"), A("b", b"a", local={"name": b"a"}, central={"offset": 0})]),
        UnsafeArchive,
        "overlaps the entry before it",
    ),
    # Names.
    "duplicate names": (
        build_zip([A("a.py", b"1"), A("a.py", b"2")]),
        UnsafeArchive,
        "two members named 'a.py'",
    ),
    "file and directory of one name": (
        build_zip([A("pkg", b"1"), A("pkg/a.py", b"2")]),
        UnsafeArchive,
        "both a file and a directory",
    ),
    "non-ASCII name without the UTF-8 flag": (
        build_zip([A("caf\xe9".encode("cp437"), b"x")]),
        UnsafeMember,
        "lacks the UTF-8 flag",
    ),
    "UTF-8 flag on a name that is not UTF-8": (
        build_zip([A(b"caf\xe9", b"x", flags=0x800)]),
        UnsafeMember,
        "flagged UTF-8 but is not",
    ),
    "absolute path": (build_zip([A("/etc/cron.d/x", b"x")]), UnsafeMember, "absolute path"),
    "parent directory component": (
        build_zip([A("pkg/../../evil.py", b"x")]),
        UnsafeMember,
        "'..' component",
    ),
    "backslash": (build_zip([A("..\\evil.py", b"x")]), UnsafeMember, "backslash"),
    "drive letter": (build_zip([A("C:/evil.py", b"x")]), UnsafeMember, "drive letter"),
    "empty component": (build_zip([A("pkg//a.py", b"x")]), UnsafeMember, "empty or '.'"),
    "dot component": (build_zip([A("./a.py", b"x")]), UnsafeMember, "empty or '.'"),
    "control character": (build_zip([A("a\nb.py", b"x")]), UnsafeMember, "control character"),
    "Unicode Path field naming another file": (
        build_zip([A("a.txt", b"a", extra=extra_field(0x7075, b"\x01\0\0\0\0evil.py"))]),
        UnsafeArchive,
        "Unicode Path extra field naming 'evil.py'",
    ),
    # Member kinds.
    "symbolic link": (
        build_zip([A("link", b"/etc/passwd", external_attr=0o120777 << 16)]),
        UnsafeMember,
        "symbolic link",
    ),
    "FIFO": (build_zip([A("fifo", external_attr=0o010644 << 16)]), UnsafeMember, "FIFO"),
    "directory mode without a slash": (
        build_zip([A("pkg", method=STORED, external_attr=DIR_MODE)]),
        UnsafeArchive,
        "directory mode without a trailing slash",
    ),
    "directory with contents": (
        build_zip([A("pkg/", b"data", external_attr=DIR_MODE)]),
        UnsafeArchive,
        "Directory member 'pkg/' has contents",
    ),
    "encrypted member": (build_zip([A("a", b"a", flags=0x01)]), UnsafeArchive, "encrypted"),
    "reserved flag": (build_zip([A("a", b"a", flags=0x4000)]), UnsafeArchive, "flags 0x4000"),
    "bzip2 member": (
        build_zip([A("a", b"a", method=12, payload=b"BZh9")]),
        UnsafeArchive,
        "compression method 12",
    ),
    # Local header against central directory.
    "local name differs": (
        build_zip([A("a.py", b"a", local={"name": b"b.py"})]),
        UnsafeArchive,
        "names 'b.py', but the central directory names it 'a.py'",
    ),
    "local method differs": (
        build_zip([A("a", b"a", method=STORED, local={"method": 8})]),
        UnsafeArchive,
        "compression method 8, but the central directory gives 0",
    ),
    "local size differs": (
        build_zip([A("a", b"abc", local={"size": 1})]),
        UnsafeArchive,
        "gives the size as 1, but the central directory gives 3",
    ),
    "local CRC differs": (
        build_zip([A("a", b"abc", local={"crc": 1})]),
        UnsafeArchive,
        "gives the CRC as 1",
    ),
    "local flags differ": (
        build_zip([A("a", b"abc", central={"flags": 0x800})]),
        UnsafeArchive,
        "general purpose flags 0x0000, but the central directory has 0x0800",
    ),
    "descriptor only in the local header's flags": (
        build_zip([streamed("a", b"hello", central={"flags": 0})]),
        UnsafeArchive,
        "whether a data descriptor follows",
    ),
    "descriptor disagrees on the size": (
        build_zip(
            [streamed("a", b"hello", descriptor=b"PK\x07\x08" + struct.pack("<LLL", 0, 7, 6))]
        ),
        UnsafeArchive,
        "data descriptor of member 'a'",
    ),
    "descriptor cut off by the end of the file": (
        build_zip([streamed("a", b"hello", descriptor=b"")]),
        UnsafeArchive,
        "data descriptor",
    ),
    # ZIP64.
    "ZIP64 extra field longer than the marked values": (
        build_zip([A("a", b"abc", extra=extra_field(1, struct.pack("<QQ", 99, 99)))]),
        UnsafeArchive,
        "marks 0 values as stored there",
    ),
    "ZIP64 marker without a ZIP64 extra field": (
        build_zip([A("a", b"abc", central={"size": 0xFFFFFFFF})]),
        UnsafeArchive,
        "has none",
    ),
    "local ZIP64 field with one size": (
        build_zip(
            [
                A(
                    "a",
                    b"abc",
                    local={"size": 0xFFFFFFFF, "extra": extra_field(1, struct.pack("<Q", 3))},
                )
            ]
        ),
        UnsafeArchive,
        "must hold both sizes",
    ),
    "local ZIP64 field contradicting the header": (
        build_zip([A("a", b"abc", local={"extra": extra_field(1, struct.pack("<QQ", 9, 5))})]),
        UnsafeArchive,
        "two different sizes",
    ),
    "ZIP64 end record contradicting the classic one": (
        build_zip([A("a", b"a")], zip64=True, end={"entries": 2, "disk_entries": 2}),
        UnsafeArchive,
        "the classic end record gives 2",
    ),
    # Extra fields.
    "stray bytes in the extra data": (
        build_zip([A("a", b"a", extra=b"   ")]),
        MalformedArchive,
        "3 stray bytes",
    ),
    "extra field longer than the extra data": (
        build_zip([A("a", b"a", extra=struct.pack("<HH", 0x5455, 9) + b"1234")]),
        MalformedArchive,
        "declares 9 bytes but only 4 remain",
    ),
    "one extra field twice": (
        build_zip([A("a", b"a", extra=extra_field(0x5455, b"\x01") * 2)]),
        UnsafeArchive,
        "appears twice",
    ),
    # Data.
    "CRC that does not match": (
        build_zip([A("a", b"abc", local={"crc": 7}, central={"crc": 7})]),
        MalformedArchive,
        "CRC of member 'a'",
    ),
    "CRC zero on a member with data": (
        build_zip([A("a", b"abc", local={"crc": 0}, central={"crc": 0})]),
        MalformedArchive,
        "CRC of member 'a'",
    ),
    "declared size smaller than the data": (
        build_zip([A("a", b"benign\nmalicious\n", local={"size": 7}, central={"size": 7})]),
        UnsafeArchive,
        "inflates to more than its declared 7 bytes",
    ),
    "declared size larger than the data": (
        build_zip([A("a", b"abc", local={"size": 9}, central={"size": 9})]),
        UnsafeArchive,
        "inflates to 3 bytes, not its declared 9",
    ),
    "data after the deflate stream": (
        build_zip([A("a", b"abc", payload=deflate(b"abc") + b"hidden")]),
        UnsafeArchive,
        "ends before its declared compressed size",
    ),
    "deflate stream cut short": (
        build_zip([A("a", b"abc" * 100, payload=deflate(b"abc" * 100)[:5])]),
        MalformedArchive,
        "ends before its deflate stream does",
    ),
    "corrupt deflate data": (
        build_zip([A("a", b"abc", payload=b"\xff\xff\xff\xff")]),
        MalformedArchive,
        "is corrupt",
    ),
    "stored member whose sizes differ": (
        build_zip([A("a", b"abc", method=STORED, payload=b"abcdef")]),
        UnsafeArchive,
        "must be the same size",
    ),
}


@pytest.mark.parametrize(("data", "error", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_refuses(tmp_path: Path, data: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as caught:
        read(tmp_path, data)
    assert reason in str(caught.value)


def test_tar_polyglot_is_refused(tmp_path: Path) -> None:
    """A ZIP whose first 512 bytes are also a valid tar header is a tar archive too."""
    name = bytearray(b"n" * 600)
    header = build_zip([RawEntry(bytes(name), b"x")])[:30]  # independent of the name's bytes
    block = bytearray(header + name[:482])
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    name[:482] = block[30:]
    data = build_zip([RawEntry(bytes(name), b"x")])
    assert data[:512] == block
    with pytest.raises(UnsafeArchive, match="both a ZIP archive and a tar archive"):
        read(tmp_path, data)


# ---------------------------------------------------------------------------------------------
# Bombs: declared sizes are checked first, real bytes are counted while inflating.


def test_declared_ratio_bomb_refused_before_inflating(tmp_path: Path) -> None:
    # 100 MiB declared from 1 KiB: refused on the declared sizes, nothing is inflated.
    entry = RawEntry("bomb", payload=b"\0" * 1024, local={"size": 100 * MiB})
    entry.central = {"size": 100 * MiB}
    with pytest.raises(ArchiveBomb, match="decompression bomb"):
        read(tmp_path, build_zip([entry]))


def test_real_ratio_bomb(tmp_path: Path) -> None:
    data = build_zip([RawEntry("zeros", b"\0" * MiB)])
    with pytest.raises(ArchiveBomb, match="ratio above 50"):
        read(tmp_path, data, Limits(bomb_min_size=64 * 1024))


def test_spoofed_sizes_stop_at_the_first_chunk(tmp_path: Path) -> None:
    # Declares 10 bytes and holds 64 MiB of zeros (compressed to ~64 KiB): the reader stops
    # once the real bytes pass the declared 10, after one chunk, not after 64 MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(MiB)
    payload = b"".join(compressor.compress(chunk) for _ in range(64)) + compressor.flush()
    entry = RawEntry("bomb", payload=payload, local={"size": 10, "crc": 0})
    entry.central = {"size": 10, "crc": 0}
    with pytest.raises(UnsafeArchive, match="more than its declared 10 bytes"):
        read(tmp_path, build_zip([entry]))


def test_member_size_cap(tmp_path: Path) -> None:
    data = build_zip([RawEntry("a", b"x" * 2000)])
    with pytest.raises(ArchiveBomb, match="per member"):
        read(tmp_path, data, Limits(max_member_size=1000))


def test_total_size_cap(tmp_path: Path) -> None:
    data = build_zip([RawEntry(f"m{i}", b"x" * 600) for i in range(4)])
    with pytest.raises(ArchiveBomb, match="at most 2 KiB"):
        read(tmp_path, data, Limits(max_total_inflated=2048))


def test_member_count_cap(tmp_path: Path) -> None:
    data = build_zip([RawEntry(f"m{i}", b"x") for i in range(5)])
    with pytest.raises(ArchiveBomb, match="5 members"):
        read(tmp_path, data, Limits(max_members=4))


def test_kept_member_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(build_zip([RawEntry("METADATA", b"x" * 100)]))
    with pytest.raises(MetadataTooLarge, match="METADATA is 100 bytes"):
        read_zip(path, Limits(max_metadata_size=99), keep=lambda name: name == "METADATA")
