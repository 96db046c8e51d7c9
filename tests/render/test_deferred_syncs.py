"""A render pass fsyncs each directory it changed once, before anything signs or records it.

Within :meth:`Tree.render_pass` (what ``Renderer.catch_up`` wraps the pages and
links of an index in), a page or link is fsynced as a file before its rename,
and its directory when the pass ends. The TUF round that signs the pages (its
timestamp written last) and the ``.serial`` marker come after: a crash before
them leaves ``.serial`` behind and the next catch-up renders the rows again.
The real ``fsync_dir`` runs; the test only watches the order of the calls.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import tilsit.store.fs
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.instance import Instance
from tilsit.store.tree import Tree

PROJECT = "durable"


class Watch:
    """What reached the disk, in order: ("entry", dir), ("fsync", dir), ("write", relative)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, Path | str]] = []
        real_fsync = tilsit.store.fs.fsync_dir
        real_write, real_link = Tree.write, Tree.link

        def fsync_dir(directory: Path) -> None:
            real_fsync(directory)
            self.events.append(("fsync", directory))

        # An entry is noted as its write starts: a write outside a pass fsyncs within.
        def write(tree: Tree, relative: str, data: bytes) -> None:
            self.events.append(("write", relative))
            self.events.append(("entry", tree.path(relative).parent))
            real_write(tree, relative, data)

        def link(tree: Tree, relative: str, source: Path) -> None:
            if not tree.path(relative).exists():  # else the link is left as it is
                self.events.append(("entry", tree.path(relative).parent))
            real_link(tree, relative, source)

        monkeypatch.setattr("tilsit.store.tree.fsync_dir", fsync_dir)
        monkeypatch.setattr(Tree, "write", write)
        monkeypatch.setattr(Tree, "link", link)

    def not_durable_at(self, position: int) -> set[Path]:
        """Directories that gained an entry before ``position`` and no fsync after it."""
        pending: set[Path] = set()
        for kind, what in self.events[:position]:
            if kind == "entry":
                assert isinstance(what, Path)
                pending.add(what)
            elif kind == "fsync":
                assert isinstance(what, Path)
                pending.discard(what)
        return pending

    def position(self, suffix: str) -> int:
        found = [
            i for i, (k, w) in enumerate(self.events) if k == "write" and str(w).endswith(suffix)
        ]
        assert found, f"nothing written ending in {suffix}"
        return found[-1]


def test_an_upload_fsyncs_each_directory_once_before_signing_and_serial(
    client: AppClient, token: str, instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = upload(client, make_wheel(PROJECT, "1.0"), token)  # the index's first pages
    assert response.status_code == 200, response.text
    watch = Watch(monkeypatch)
    response = upload(client, make_wheel(PROJECT, "2.0"), token)
    assert response.status_code == 200, response.text

    # The project's simple directory gained four names (two pages, two hashed
    # copies): one fsync for all of them (it was one per name).
    simple = instance.tree.real_root / "main" / "simple" / PROJECT
    gained = sum(1 for kind, what in watch.events if kind == "entry" and what == simple)
    assert gained == 4, watch.events
    synced = Counter(what for kind, what in watch.events if kind == "fsync")
    assert synced[simple] == 1, watch.events
    # Nothing the round signs, and not .serial, is written before its names are durable:
    # not the first TUF file, not the timestamp (written last), not the marker.
    first_tuf = next(
        i for i, (k, w) in enumerate(watch.events) if k == "write" and "/tuf/" in str(w)
    )
    for position in (first_tuf, watch.position("tuf/timestamp.json"), watch.position(".serial")):
        assert watch.not_durable_at(position) == set(), watch.events[: position + 1]
    assert watch.position("tuf/timestamp.json") < watch.position(".serial")
    # A page is written only once the files it links have durable names.
    first_page = watch.position(f"main/simple/{PROJECT}/index.v1.json")
    root = instance.tree.real_root

    def of_files(directory: object) -> bool:  # packages/… and main/packages/… (hashed names)
        return isinstance(directory, Path) and "packages" in directory.relative_to(root).parts

    assert [d for d in watch.not_durable_at(first_page) if of_files(d)] == []
    assert [w for k, w in watch.events[:first_page] if k == "entry" and of_files(w)]
    assert watch.not_durable_at(len(watch.events)) == set()


def test_writes_outside_a_render_pass_are_durable_when_they_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path / "tree", tmp_path / "tmp")
    watch = Watch(monkeypatch)
    tree.write("main/tuf/1.root.json", b"{}")  # a trust file, a key file: not deferred
    assert [kind for kind, _what in watch.events] == ["write", "entry", "fsync"]
    with tree.render_pass():
        tree.write("main/simple/a/index.html", b"a")
        tree.write("main/simple/a/index.v1.json", b"{}")
        with tree.render_pass():  # nested: the outer pass syncs
            tree.write("main/simple/b/index.html", b"b")
        assert watch.not_durable_at(len(watch.events)) == {
            tree.real_root / "main/simple/a",
            tree.real_root / "main/simple/b",
        }
    assert watch.not_durable_at(len(watch.events)) == set()
    synced = Counter(what for kind, what in watch.events if kind == "fsync")
    assert synced[tree.real_root / "main/simple/a"] == 1
