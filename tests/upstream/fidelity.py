"""The corpus and the checks of the fidelity tests, shared by the mirror and proxy tests.

Every upstream shape gets the same files: ``fid-pkg`` 1.0 (a wheel and an sdist)
and 2.0 (a wheel), whose METADATA says summary, requires-dist and
requires-python; and ``fid-bad`` 1.0, a wheel whose METADATA is past the dists
readers' size cap (hostile input from an upstream), mirrored without ``.metadata``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.builders import Dist, Meta, make_sdist, make_wheel
from tests.upstream.shapes import Listed, ShapedUpstream
from tests.upstream.static import StaticServer, StaticTree

SUMMARY = "Kept through any mirror"
REQUIRES_DIST = ["attrs>=21"]
REQUIRES_PYTHON = ">=3.8"
# What the devpi-shaped upstream says (its JSON pages); the others say nothing.
TIMES = {
    "fid_pkg-1.0-py3-none-any.whl": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "fid_pkg-1.0.tar.gz": datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC),
    "fid_pkg-2.0-py3-none-any.whl": datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC),
    "fid_bad-1.0-py3-none-any.whl": datetime(2024, 2, 1, tzinfo=UTC),
}
SHAPES = ("pypiserver", "devpi", "plain-tree")


def _wheel(version: str) -> Dist:
    return make_wheel(
        "fid-pkg",
        version,
        summary=SUMMARY,
        requires_dist=REQUIRES_DIST,
        requires_python=REQUIRES_PYTHON,
    )


def corpus() -> dict[str, list[Dist]]:
    oversized = Meta("fid-bad", "1.0").render() + b"Description: " + b"x" * (3 << 20) + b"\n"
    return {
        "fid-pkg": [
            _wheel("1.0"),
            make_sdist("fid-pkg", "1.0", summary=SUMMARY, requires_python=REQUIRES_PYTHON),
            _wheel("2.0"),
        ],
        "fid-bad": [make_wheel("fid-bad", "1.0", metadata=oversized)],
    }


def wheel_metadata(dist: Dist) -> bytes:
    with zipfile.ZipFile(io.BytesIO(dist.data)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


@dataclass
class ShapedIndex:
    """One running upstream of a shape, serving :func:`corpus`."""

    shape: str
    simple_url: str  # ends with "/"
    dists: dict[str, list[Dist]]

    @property
    def gives_times(self) -> bool:
        return self.shape == "devpi"

    @property
    def gives_requires_python(self) -> bool:
        return self.shape == "devpi"

    def dist(self, filename: str) -> Dist:
        return next(d for ds in self.dists.values() for d in ds if d.filename == filename)


def start_shape(shape: str, root: Path) -> tuple[ShapedIndex, Callable[[], None]]:
    dists = corpus()
    if shape == "plain-tree":
        tree = StaticTree(root / "static")
        for project, files in dists.items():
            for dist in files:
                tree.add(project, dist)
        server = StaticServer(tree.root)
        return ShapedIndex(shape, f"{server.url}/simple/", dists), server.stop
    shaped = ShapedUpstream(shape)
    for project, files in dists.items():
        shaped.add(
            project,
            *(
                Listed(
                    d,
                    requires_python=REQUIRES_PYTHON if d.filename.startswith("fid_pkg") else None,
                    upload_time=TIMES[d.filename] if shape == "devpi" else None,
                )
                for d in files
            ),
        )
    return ShapedIndex(shape, shaped.simple_url, dists), shaped.stop


@pytest.fixture(name="shaped", params=SHAPES)
def shaped_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ShapedIndex]:
    index, stop = start_shape(request.param, tmp_path)
    yield index
    stop()


# -- the checks -------------------------------------------------------------------------


def check_json_page(index: ShapedIndex, page: dict[str, Any], *, fetched: set[str]) -> None:
    """``page`` (PEP 691) of ``fid-pkg``: metadata, requires-python, upload-time as they should be.

    ``fetched``: the wheels whose bytes the index holds (a proxy reads METADATA on fetch).
    """
    files = {f["filename"]: f for f in page["files"]}
    assert set(files) == {d.filename for d in index.dists["fid-pkg"]}
    for filename, entry in files.items():
        if index.gives_times:
            moment = TIMES[filename].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            assert entry["upload-time"] == moment, entry
        else:
            # Unknown upstream: absent, neither invented (the sync time) nor null.
            assert "upload-time" not in entry, entry
        if not filename.endswith(".whl"):
            # Sdists are not read: their PKG-INFO may leave fields dynamic.
            assert entry["core-metadata"] is False
            continue
        if filename not in fetched:
            continue
        expected = hashlib.sha256(wheel_metadata(index.dist(filename))).hexdigest()
        assert entry["core-metadata"] == {"sha256": expected}, entry
        assert entry["dist-info-metadata"] == {"sha256": expected}
        assert entry["requires-python"] == REQUIRES_PYTHON


def check_html_page(index: ShapedIndex, page: bytes) -> None:
    text = page.decode()
    assert ("data-upload-time=" in text) is index.gives_times, text


def check_legacy_json(index: ShapedIndex, doc: dict[str, Any], *, fetched: set[str]) -> None:
    """The legacy JSON of ``fid-pkg``: ``info`` from the 2.0 wheel's METADATA, digests filled."""
    info = doc["info"]
    assert info["summary"] == SUMMARY
    assert info["version"] == "2.0"
    assert info["requires_dist"] == REQUIRES_DIST
    assert info["requires_python"] == REQUIRES_PYTHON
    for version, files in doc["releases"].items():
        for entry in files:
            dist = index.dist(entry["filename"])
            if index.gives_times:
                assert entry["upload_time_iso_8601"] == TIMES[dist.filename].strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
            else:
                assert entry["upload_time_iso_8601"] is None, (version, entry)
                assert entry["upload_time"] is None
            if dist.filename not in fetched:
                continue
            assert entry["digests"] == {
                "sha256": dist.sha256,
                "md5": hashlib.md5(dist.data, usedforsecurity=False).hexdigest(),
                "blake2b_256": hashlib.blake2b(dist.data, digest_size=32).hexdigest(),
            }
            assert entry["md5_digest"] == entry["digests"]["md5"]


def check_unreadable(page: dict[str, Any]) -> None:
    """``fid-bad``: listed, without ``.metadata`` (its METADATA is past the reader's cap)."""
    (entry,) = page["files"]
    assert entry["filename"] == "fid_bad-1.0-py3-none-any.whl"
    assert entry["core-metadata"] is False
    assert entry.get("requires-python") is None


def loads(data: bytes | None) -> dict[str, Any]:
    assert data is not None
    doc: dict[str, Any] = json.loads(data)
    return doc
