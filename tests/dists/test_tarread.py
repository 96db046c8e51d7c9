"""The strict tar.gz reader: what it reads, and each kind of archive it refuses, and why."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.dists.rawtar import (
    GNU,
    gz,
    header,
    long_name,
    member,
    pax,
    tar,
    tarfile_archive,
)
from tests.dists.rawzip import RawEntry, build_zip
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
from tilsit.dists.tarread import read_tar_gz

MiB = 1024 * 1024
DEFAULT = Limits()


def read(tmp_path: Path, data: bytes, limits: Limits = DEFAULT) -> Archive:
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(data)
    return read_tar_gz(path, limits, keep=lambda _name: True)


def stored_gzip_polyglot() -> bytes:
    """A tar.gz, gzip level 0, whose last member is a ZIP whose comment covers the rest.

    Level 0 stores the bytes as they are, so the inner ZIP's end record is in the file; with
    its comment length patched to reach the end of the file, ZIP readers open the tar.gz
    as that ZIP.
    """
    inner = bytearray(build_zip([RawEntry("evil.py", b"print('pwned')\n")]))
    data = gz(tar(member(b"pkg-1.0/PKG-INFO", b"x"), member(b"pkg-1.0/t.zip", bytes(inner))), 0)
    end = data.rfind(b"PK\x05\x06")
    inner[-2:] = struct.pack("<H", len(data) - end - 22)
    return gz(tar(member(b"pkg-1.0/PKG-INFO", b"x"), member(b"pkg-1.0/t.zip", bytes(inner))), 0)


# ---------------------------------------------------------------------------------------------
# Archives the reader must read: (archive, the members' names).

READABLE: dict[str, tuple[bytes, list[str]]] = {
    "tarfile PAX format": (
        tarfile_archive({"p-1.0/PKG-INFO": b"x", "p-1.0/a.py": b"a"}),
        ["p-1.0/PKG-INFO", "p-1.0/a.py"],
    ),
    "tarfile PAX format, non-ASCII and long names": (
        tarfile_archive({"p-1.0/café.txt": b"x", "p-1.0/" + "d/" * 80 + "f": b"y"}),
        ["p-1.0/café.txt", "p-1.0/" + "d/" * 80 + "f"],
    ),
    "tarfile GNU format with a long name": (
        tarfile_archive({"p-1.0/" + "n" * 150: b"x"}, format=tarfile.GNU_FORMAT),
        ["p-1.0/" + "n" * 150],
    ),
    "tarfile ustar format with a name prefix": (
        tarfile_archive({"p-1.0/" + "d" * 90 + "/" + "f" * 90: b"x"}, format=tarfile.USTAR_FORMAT),
        ["p-1.0/" + "d" * 90 + "/" + "f" * 90],
    ),
    "directories": (
        gz(
            tar(
                member(b"p-1.0/", typeflag=b"5"),
                member(b"p-1.0/sub/", typeflag=b"\0"),
                member(b"p-1.0/sub/a"),
            )
        ),
        ["p-1.0", "p-1.0/sub", "p-1.0/sub/a"],
    ),
    "git archive's global comment": (
        gz(tar(pax((b"comment", b"0123abcd"), typeflag=b"g"), member(b"p-1.0/a", b"a"))),
        ["p-1.0/a"],
    ),
    "no end-of-archive marker": (gz(tar(member(b"p-1.0/a", b"a"), end=False)), ["p-1.0/a"]),
    "base-256 size": (
        gz(tar(header(b"a", size_field=b"\x80" + bytes(10) + b"\x03") + b"abc" + bytes(509))),
        ["a"],
    ),
}


@pytest.mark.parametrize(("data", "names"), READABLE.values(), ids=READABLE.keys())
def test_reads(tmp_path: Path, data: bytes, names: list[str]) -> None:
    archive = read(tmp_path, data)
    assert [m.name for m in archive.members] == names
    with tarfile.open(fileobj=io.BytesIO(data)) as reference:
        for info in reference.getmembers():
            if info.isfile():
                extracted = reference.extractfile(info)
                assert extracted is not None
                assert archive.kept[info.name] == extracted.read()


# ---------------------------------------------------------------------------------------------
# Archives the reader must refuse: (archive, exception class, words the reason must contain).

HOSTILE: dict[str, tuple[bytes, type[InvalidDistribution], str]] = {
    # Member kinds.
    "symbolic link": (
        gz(tar(member(b"p/link", typeflag=b"2", linkname=b"/etc/passwd"))),
        UnsafeMember,
        "symbolic link",
    ),
    "hard link": (
        gz(tar(member(b"p/a", b"a"), member(b"p/b", typeflag=b"1", linkname=b"p/a"))),
        UnsafeMember,
        "hard link",
    ),
    "character device": (gz(tar(member(b"p/d", typeflag=b"3"))), UnsafeMember, "character device"),
    "block device": (gz(tar(member(b"p/d", typeflag=b"4"))), UnsafeMember, "block device"),
    "FIFO": (gz(tar(member(b"p/f", typeflag=b"6"))), UnsafeMember, "FIFO"),
    "GNU sparse file": (
        gz(tar(member(b"p/s", typeflag=b"S", magic=GNU))),
        UnsafeMember,
        "sparse file",
    ),
    "PAX sparse file": (
        gz(tar(pax((b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0")), member(b"p/s"))),
        UnsafeMember,
        "sparse file",
    ),
    "PAX link path": (
        gz(tar(pax((b"linkpath", b"/etc/passwd")), member(b"p/a"))),
        UnsafeMember,
        "PAX link path",
    ),
    "GNU long link name": (
        gz(tar(member(b"././@LongLink", b"/etc/passwd\0", typeflag=b"K", magic=GNU))),
        UnsafeMember,
        "GNU long link name",
    ),
    "unknown member type": (gz(tar(member(b"p/a", typeflag=b"Z"))), UnsafeMember, "unknown"),
    # Names.
    "absolute path": (gz(tar(member(b"/etc/passwd", b"x"))), UnsafeMember, "absolute path"),
    "parent directory": (gz(tar(member(b"p/../../x", b"x"))), UnsafeMember, "'..'"),
    "parent directory in a PAX path": (
        gz(tar(pax((b"path", b"../x")), member(b"p/x", b"x"))),
        UnsafeMember,
        "'..'",
    ),
    "parent directory in a GNU long name": (
        gz(tar(long_name(b"../" * 40 + b"x"), member(b"p/x", b"x", magic=GNU))),
        UnsafeMember,
        "'..'",
    ),
    "backslash": (gz(tar(member(b"p\\..\\x", b"x"))), UnsafeMember, "backslash"),
    "name that is not UTF-8": (gz(tar(member(b"p/caf\xe9", b"x"))), UnsafeMember, "not UTF-8"),
    "name encoding other than UTF-8": (
        gz(tar(pax((b"hdrcharset", b"BINARY")), member(b"p/a", b"x"))),
        UnsafeMember,
        "encoding other than UTF-8",
    ),
    "duplicate member": (
        gz(tar(member(b"p/a", b"1"), member(b"p/a", b"2"))),
        UnsafeArchive,
        "two members named 'p/a'",
    ),
    # Extended headers that readers apply differently.
    "PAX size that differs from the header's": (
        gz(tar(pax((b"size", b"0")), member(b"p/a", member(b"p/hidden", b"evil")))),
        UnsafeArchive,
        "PAX size ('0') that differs from its header's (1024)",
    ),
    "PAX key given twice": (
        gz(tar(pax((b"path", b"p/a"), (b"path", b"p/b")), member(b"p/x", b"x"))),
        UnsafeArchive,
        "gives 'path' twice",
    ),
    "two PAX headers for one member": (
        gz(tar(pax((b"path", b"p/a")), pax((b"path", b"p/b")), member(b"p/x", b"x"))),
        UnsafeArchive,
        "Two PAX extended headers",
    ),
    "two GNU long names for one member": (
        gz(tar(long_name(b"p/a"), long_name(b"p/b"), member(b"p/x", b"x", magic=GNU))),
        UnsafeArchive,
        "Two GNU long names",
    ),
    "PAX path and GNU long name": (
        gz(tar(pax((b"path", b"p/a")), long_name(b"p/b"), member(b"p/x", b"x", magic=GNU))),
        UnsafeArchive,
        "both a PAX path and a GNU long name",
    ),
    "global PAX header renaming members": (
        gz(tar(pax((b"path", b"evil"), typeflag=b"g"), member(b"p/a", b"x"))),
        UnsafeArchive,
        "global PAX header sets 'path'",
    ),
    "malformed PAX record": (
        gz(tar(pax(raw=b"99 path=x\n"), member(b"p/a", b"x"))),
        MalformedArchive,
        "malformed record length",
    ),
    "PAX record without a length": (
        gz(tar(pax(raw=b"path=x\n"), member(b"p/a", b"x"))),
        MalformedArchive,
        "malformed record",
    ),
    "oversized extended header": (
        gz(tar(header(b"PaxHeader", size=2 * MiB, typeflag=b"x"))),
        UnsafeArchive,
        "extended header declares 2 MiB",
    ),
    "empty archive": (gz(tar()), MalformedArchive, "no members"),
    "empty stream": (gz(b""), MalformedArchive, "no members"),
    "global header with no member": (
        gz(tar(member(b"p/a", b"a"), pax((b"comment", b"x"), typeflag=b"g"))),
        MalformedArchive,
        "ends with an extended header",
    ),
    "extended header with no member": (
        gz(tar(pax((b"path", b"p/a")))),
        MalformedArchive,
        "ends with an extended header",
    ),
    "regular file named like a directory": (
        gz(tar(member(b"p/dir/"))),
        UnsafeArchive,
        "regular file whose name ends in '/'",
    ),
    "directory with contents": (
        gz(tar(member(b"p/dir", member(b"p/hidden", b"evil"), typeflag=b"5"))),
        UnsafeArchive,
        "Directory member 'p/dir' has 1 KiB of contents",
    ),
    # After the end.
    "member after the end-of-archive marker": (
        gz(tar(member(b"p/a", b"a")) + member(b"p/hidden", b"evil")),
        UnsafeArchive,
        "Data follows the tar archive's end-of-archive marker",
    ),
    "trailing data after the gzip stream": (
        gz(tar(member(b"p/a", b"a"))) + b"trailing",
        UnsafeArchive,
        "8 bytes of trailing data follow the gzip stream",
    ),
    "second gzip member": (
        gz(tar(member(b"p/a", b"a"))) + gz(tar(member(b"p/b", b"b"))),
        UnsafeArchive,
        "trailing data follow the gzip stream",
    ),
    "ZIP appended to the tar.gz": (
        gz(tar(member(b"p/a", b"a"))) + build_zip([RawEntry("evil.py", b"x")]),
        UnsafeArchive,
        "both a gzip-compressed tar archive and a ZIP archive",
    ),
    "ZIP inside a stored gzip stream": (
        stored_gzip_polyglot(),
        UnsafeArchive,
        "both a gzip-compressed tar archive and a ZIP archive",
    ),
    # Malformed.
    "plain tar, not gzip": (tar(member(b"p/a", b"a")), MalformedArchive, "not gzip-compressed"),
    "corrupt gzip data": (
        gz(tar(member(b"p/a", b"a")))[:10] + b"\xff" * 40,
        MalformedArchive,
        "gzip stream is corrupt",
    ),
    "truncated gzip stream": (
        gz(tar(member(b"p/a", b"a" * 5000)))[:-20],
        MalformedArchive,
        "truncated",
    ),
    "truncated member data": (
        gz(header(b"p/a", size=5000) + b"a" * 100),
        MalformedArchive,
        "truncated inside 'p/a'",
    ),
    "wrong header checksum": (
        gz(tar(header(b"p/a", checksum_delta=1))),
        MalformedArchive,
        "wrong checksum",
    ),
    "old v7 header without magic": (
        gz(tar(header(b"p/a", magic=bytes(8)))),
        MalformedArchive,
        "neither POSIX ustar nor GNU tar",
    ),
    "negative base-256 size": (
        gz(tar(header(b"p/a", size_field=b"\xff" * 12))),
        MalformedArchive,
        "negative or malformed size",
    ),
    "size that is not octal": (
        gz(tar(header(b"p/a", size_field=b"12345678901x"))),
        MalformedArchive,
        "malformed size",
    ),
}


@pytest.mark.parametrize(("data", "error", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_refuses(tmp_path: Path, data: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as caught:
        read(tmp_path, data)
    assert reason in str(caught.value)


def test_the_stored_polyglot_is_a_zip_to_zipfile() -> None:
    """The polyglot above is real: zipfile opens the tar.gz and finds the hidden file."""
    with zipfile.ZipFile(io.BytesIO(stored_gzip_polyglot())) as archive:
        assert archive.read("evil.py") == b"print('pwned')\n"


# ---------------------------------------------------------------------------------------------
# Bombs: the gzip stream's real output is counted, whatever the headers say.


def test_zeros_after_the_end_marker_count(tmp_path: Path) -> None:
    # 100 MiB of zeros compress to 100 KiB; PyPI's rule (over 64 MiB at over 50x) refuses it
    # while inflating, with the default limits.
    data = gz(tar(member(b"p/a", b"a")) + bytes(100 * MiB), 1)
    with pytest.raises(ArchiveBomb, match="decompression bomb"):
        read(tmp_path, data)


def test_measured_ratio(tmp_path: Path) -> None:
    data = gz(tar(member(b"p/zeros", bytes(MiB))))
    with pytest.raises(ArchiveBomb, match="ratio above 50"):
        read(tmp_path, data, Limits(bomb_min_size=64 * 1024))


def test_total_cap(tmp_path: Path) -> None:
    data = gz(tar(*(member(b"p/%d" % i, b"x" * 1000) for i in range(4))))
    with pytest.raises(ArchiveBomb, match="more than 2 KiB"):
        read(tmp_path, data, Limits(max_total_inflated=2048))


def test_member_size_cap(tmp_path: Path) -> None:
    data = gz(tar(member(b"p/a", b"x" * 2000)))
    with pytest.raises(ArchiveBomb, match="per member"):
        read(tmp_path, data, Limits(max_member_size=1000))


def test_member_count_cap(tmp_path: Path) -> None:
    data = gz(tar(*(member(b"p/%d" % i) for i in range(5))))
    with pytest.raises(ArchiveBomb, match="more than 4 members"):
        read(tmp_path, data, Limits(max_members=4))


def test_kept_member_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gz(tar(member(b"p/PKG-INFO", b"x" * 100))))
    with pytest.raises(MetadataTooLarge, match="p/PKG-INFO is 100 bytes"):
        read_tar_gz(path, Limits(max_metadata_size=99), keep=lambda name: name == "p/PKG-INFO")
