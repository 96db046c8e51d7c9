"""Mirroring a plain static tree: PEP 503 HTML, no serials, ETags only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blobs import served_bytes
from tests.builders import Meta, make_sdist, make_wheel
from tests.upstream.conftest import (
    Notes,
    check_consistent,
    journal_serial,
    make_mirror,
    state_of,
    sync,
    tree_page,
    tree_projects,
)
from tests.upstream.static import StaticServer, StaticTree
from tilsit.config import Settings
from tilsit.instance import Instance
from tilsit.store.tree import file_path


@pytest.fixture
def static(tmp_path: Path) -> Iterator[tuple[StaticTree, StaticServer]]:
    tree = StaticTree(tmp_path / "static")
    tree.write()
    server = StaticServer(tree.root)
    yield tree, server
    server.stop()


def test_a_static_tree_syncs_by_conditional_gets(
    static: tuple[StaticTree, StaticServer], mirror_instance: tuple[Settings, Instance]
) -> None:
    tree, server = static
    instance = mirror_instance[1]
    wheel = make_wheel("pkg-a", "1.0", requires_python=">=3.8")
    tree.add(
        "pkg-a",
        wheel,
        metadata=Meta("pkg-a", "1.0", requires_python=">=3.8").render(),
        attrs={"data-requires-python": ">=3.8"},
    )
    tree.add("pkg-a", make_sdist("pkg-a", "1.0"))
    tree.add("pkg-b", make_wheel("pkg_b", "0.1"), attrs={"data-yanked": "bad <version>"})
    tree.add("pkg-c", make_sdist("pkg-c", "2.0"))
    tree.add("pkg-c", make_sdist("pkg-c", "2.1"), hashed=False)
    make_mirror(instance, f"{server.url}/simple/")

    notes = Notes()
    report = sync(instance, reporter=notes)
    assert report.ok, report.failed
    assert sorted(tree_projects(instance, "mirror")) == ["pkg-a", "pkg-b", "pkg-c"]
    assert check_consistent(instance) == 4  # sizes measured while fetching
    assert any("pkg_c-2.1.tar.gz: no sha256" in line for line in notes.lines), notes.lines
    assert report.requests == 1 + 3 + 4 + 1  # root, pages, files, one metadata file
    server.taken()
    page = json.loads(tree_page(instance, "mirror", "pkg-a") or b"")
    first = {f["filename"]: f for f in page["files"]}[wheel.filename]
    assert first["requires-python"] == ">=3.8"
    assert first["size"] == len(wheel.data)
    assert first["core-metadata"] is not False
    served = served_bytes(
        instance.tree.path(file_path(wheel.sha256, wheel.filename)), instance.blobs
    )
    assert served == wheel.data
    yanked = json.loads(tree_page(instance, "mirror", "pkg-b") or b"")["files"][0]["yanked"]
    assert yanked == "bad <version>"
    assert state_of(instance).synced_serial is None  # no serials upstream

    # Nothing changed: every page revalidates with a 304, nothing is fetched.
    before = journal_serial(instance)
    report = sync(instance)
    assert report.ok and report.requests == 4
    assert sorted(status for _path, status in server.taken()) == [304] * 4
    assert journal_serial(instance) == before

    # One new file: only that page answers 200, only that file is fetched.
    new = make_wheel("pkg_b", "0.2")
    tree.add("pkg-b", new)
    report = sync(instance)
    assert report.ok and report.synced == 1
    fetched = sorted((p, s) for p, s in server.taken() if s == 200)
    assert fetched == [(f"/files/{new.filename}", 200), ("/simple/pkg-b/", 200)]

    # Gone from the root: removed here.
    tree.remove("pkg-c")
    report = sync(instance)
    assert report.ok and report.removed == 1
    assert sorted(tree_projects(instance, "mirror")) == ["pkg-a", "pkg-b"]
    check_consistent(instance)


def test_an_upstream_root_that_empties_is_refused(
    static: tuple[StaticTree, StaticServer], mirror_instance: tuple[Settings, Instance]
) -> None:
    tree, server = static
    instance = mirror_instance[1]
    tree.add("pkg-a", make_wheel("pkg-a", "1.0"))
    tree.add("pkg-b", make_wheel("pkg-b", "1.0"))
    make_mirror(instance, f"{server.url}/simple/")
    assert sync(instance).ok
    tree.remove("pkg-a")
    tree.remove("pkg-b")
    # A wiped upstream lists nothing: the run fails and the mirror keeps what it has.
    report = sync(instance)
    assert not report.ok
    assert sorted(tree_projects(instance, "mirror")) == ["pkg-a", "pkg-b"]
    assert "lists no projects" in (state_of(instance).last_error or "")
