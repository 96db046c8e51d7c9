"""A mirror of an upstream that lists one version under two spellings (``1.0``, ``1.0.0``).

The upstream owns the truth, so every file it lists is kept; equal versions are
one release here, as on PyPI: the files join the release first seen, and the
release stays while any spelling of it is listed upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_sdist, make_wheel
from tests.upstream.conftest import (
    JSON,
    check_consistent,
    make_mirror,
    sync,
    tree_files,
    tree_page,
)
from tests.upstream.hostile import Answer, HostileServer, root
from tests.upstream.static import StaticServer, StaticTree
from tilsit.config import Settings
from tilsit.instance import Instance


@pytest.fixture
def static(tmp_path: Path) -> Iterator[tuple[StaticTree, StaticServer]]:
    tree = StaticTree(tmp_path / "static")
    tree.write()
    server = StaticServer(tree.root)
    yield tree, server
    server.stop()


def legacy_releases(instance: Instance, project: str) -> dict[str, list[str]]:
    raw = instance.tree.read(f"mirror/pypi/{project}/json")
    assert raw is not None
    return {
        version: sorted(f["filename"] for f in files)
        for version, files in json.loads(raw)["releases"].items()
    }


def test_equal_versions_upstream_are_one_release(
    static: tuple[StaticTree, StaticServer], mirror_instance: tuple[Settings, Instance]
) -> None:
    tree, server = static
    instance = mirror_instance[1]
    sdist, wheel = make_sdist("pkg", "1.0"), make_wheel("pkg", "1.0.0")
    tree.add("pkg", sdist)
    tree.add("pkg", wheel)
    make_mirror(instance, f"{server.url}/simple/")

    assert sync(instance).ok
    assert tree_files(instance, "mirror", "pkg") == {
        sdist.filename: sdist.sha256,
        wheel.filename: wheel.sha256,
    }
    page = json.loads(tree_page(instance, "mirror", "pkg") or b"")
    assert page["versions"] == ["1.0"]
    assert legacy_releases(instance, "pkg") == {"1.0": sorted([sdist.filename, wheel.filename])}
    check_consistent(instance)

    # The "1.0" spelling goes upstream; "1.0.0" is still listed, so the release stays.
    tree.remove("pkg", sdist.filename)
    assert sync(instance).ok
    assert tree_files(instance, "mirror", "pkg") == {wheel.filename: wheel.sha256}
    page = json.loads(tree_page(instance, "mirror", "pkg") or b"")
    assert page["versions"] == ["1.0"]
    assert legacy_releases(instance, "pkg") == {"1.0": [wheel.filename]}


def test_the_release_takes_the_spelling_the_upstream_lists(
    mirror_instance: tuple[Settings, Instance],
) -> None:
    """A PyPI-shaped JSON upstream lists version "1.0.0" (PEP 700) and, first on the
    page, a file spelled "1.0": the release is the upstream's "1.0.0", whichever file
    the mirror meets first."""
    instance = mirror_instance[1]
    sdist, wheel = make_sdist("pkg", "1.0"), make_wheel("pkg", "1.0.0")
    upstream = HostileServer().start()
    try:
        files = []
        for dist in (sdist, wheel):
            upstream.routes[f"/files/{dist.filename}"] = Answer(
                200, {"content-type": "application/octet-stream"}, dist.data
            )
            files.append(
                {
                    "filename": dist.filename,
                    "url": f"{upstream.url}/files/{dist.filename}",
                    "hashes": {"sha256": dist.sha256},
                    "size": len(dist.data),
                }
            )
        document = {
            "meta": {"api-version": "1.1", "_last-serial": 7},
            "name": "pkg",
            "files": files,
            "versions": ["1.0.0"],
        }
        upstream.routes["/simple/"] = root("pkg", serial=7)
        upstream.routes["/simple/pkg/"] = Answer(
            200, {"content-type": JSON, "x-pypi-last-serial": "7"}, json.dumps(document).encode()
        )
        make_mirror(instance, f"{upstream.url}/simple/")
        assert sync(instance).ok
        page = json.loads(tree_page(instance, "mirror", "pkg") or b"")
        assert page["versions"] == ["1.0.0"]
        assert legacy_releases(instance, "pkg") == {
            "1.0.0": sorted([sdist.filename, wheel.filename])
        }
    finally:
        upstream.stop()
