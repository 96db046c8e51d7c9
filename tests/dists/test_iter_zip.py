"""The streaming form of the strict ZIP reader (``iter_zip``): the structure checked before the
first member, each member checked before it is yielded, only the members asked for inflated."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tilsit.dists import ArchiveBomb, Limits, MalformedArchive, UnsafeArchive
from tilsit.dists.zipread import iter_zip


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_members_come_one_at_a_time_in_archive_order(tmp_path: Path) -> None:
    path = _archive(tmp_path / "a.zip", {"b.json": b"{}", "dir/": b"", "a.json": b"[1]"})
    with path.open("rb") as f:
        members = iter_zip(f)
        assert next(members) == ("b.json", b"{}")  # a generator: nothing read ahead
        assert list(members) == [("a.json", b"[1]")]  # directories are not yielded


def test_only_the_members_wanted_are_inflated(tmp_path: Path) -> None:
    data = bytearray(
        _archive(tmp_path / "a.zip", {"a": b"x" * 1000, "b": b"y" * 1000}).read_bytes()
    )
    # Corrupt a's deflate stream: its CRC cannot match. b is untouched.
    at = data.index(b"PK\x03\x04") + 30 + 1
    data[at + 2] ^= 0xFF
    path = tmp_path / "corrupt.zip"
    path.write_bytes(bytes(data))
    with path.open("rb") as f:
        assert list(iter_zip(f, want=lambda name: name == "b")) == [("b", b"y" * 1000)]
    with path.open("rb") as f, pytest.raises(MalformedArchive):
        list(iter_zip(f))


def test_the_structure_is_refused_before_any_member(tmp_path: Path) -> None:
    good = _archive(tmp_path / "a.zip", {"a": b"1", "b": b"2"}).read_bytes()
    prefixed = io.BytesIO(b"junk" + good)
    path = tmp_path / "prefixed.zip"
    path.write_bytes(prefixed.getvalue())
    seen: list[str] = []
    with path.open("rb") as f, pytest.raises(UnsafeArchive):
        for name, _data in iter_zip(f):
            seen.append(name)
    assert seen == []


def test_each_member_is_bounded(tmp_path: Path) -> None:
    path = _archive(tmp_path / "a.zip", {"small": b"1", "big": b"z" * 5000})
    with path.open("rb") as f, pytest.raises(ArchiveBomb, match="'big' declares"):
        list(iter_zip(f, Limits(max_member_size=4096)))
