"""A staged render pass: pages become visible only once durable, in the order written,
links to them follow them, and a failed flush leaves every page as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tilsit.store import tree as tree_module
from tilsit.store.tree import Tree


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "tree", tmp_path / "tmp")


class Flushes:
    """Counts sync_filesystem calls, and what the tree showed at each."""

    def __init__(self, tree: Tree, watched: Path) -> None:
        self.calls = 0
        self.seen: list[bytes | None] = []
        self.tree = tree
        self.watched = watched

    def __call__(self, directory: Path) -> None:
        self.calls += 1
        self.seen.append(self.watched.read_bytes() if self.watched.exists() else None)


def _stage_two_pages_and_a_link(tree: Tree) -> None:
    """Page a again, a new page b, and a's hashed link, as a render writes them."""
    tree.write("main/simple/a/index.html", b"new a")
    tree.write("main/simple/b/index.html", b"new b")
    tree.link("main/simple/a/hashed.index.html", tree.path("main/simple/a/index.html"))


def test_staged_pages_appear_only_after_one_flush_and_in_order(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.write("main/simple/a/index.html", b"old a")
    flushes = Flushes(tree, tree.root / "main/simple/a/index.html")
    monkeypatch.setattr(tree_module, "sync_filesystem", flushes)
    with tree.render_pass(staged=True):
        _stage_two_pages_and_a_link(tree)
        # Nothing new is visible inside the pass: not the page, not its link.
        assert tree.read("main/simple/a/index.html") == b"old a"
        assert tree.read("main/simple/b/index.html") is None
        assert not tree.path("main/simple/a/hashed.index.html").exists()
        assert flushes.calls == 0
    # One flush made the temp files durable while the old page still showed, then
    # one more made the names durable.
    assert flushes.seen == [b"old a", b"new a"]
    assert tree.read("main/simple/a/index.html") == b"new a"
    assert tree.read("main/simple/b/index.html") == b"new b"
    page = tree.path("main/simple/a/index.html")
    link = tree.path("main/simple/a/hashed.index.html")
    assert os.stat(page).st_ino == os.stat(link).st_ino
    assert list(tree.tmp.iterdir()) == []


def test_a_flush_inside_the_pass_places_what_was_staged_before_it(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree_module, "sync_filesystem", lambda directory: None)
    with tree.render_pass(staged=True):
        tree.write("main/simple/a/index.html", b"a")
        tree.sync_dirs()  # a group's files and pages are flushed before the next group
        assert tree.read("main/simple/a/index.html") == b"a"
        tree.write("main/simple/b/index.html", b"b")
        assert tree.read("main/simple/b/index.html") is None
    assert tree.read("main/simple/b/index.html") == b"b"


def test_a_failed_flush_renames_nothing_and_leaves_no_temp_file(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.write("main/simple/a/index.html", b"old a")

    def broken(directory: Path) -> None:
        raise OSError(5, "Input/output error", str(directory))

    monkeypatch.setattr(tree_module, "sync_filesystem", broken)
    with pytest.raises(OSError, match="Input/output"), tree.render_pass(staged=True):
        _stage_two_pages_and_a_link(tree)
    assert tree.read("main/simple/a/index.html") == b"old a"
    assert tree.read("main/simple/b/index.html") is None
    assert not tree.path("main/simple/a/hashed.index.html").exists()
    assert list(tree.tmp.iterdir()) == []
    # The next pass starts clean: nothing of the failed one is placed by it.
    monkeypatch.setattr(tree_module, "sync_filesystem", lambda directory: None)
    with tree.render_pass(staged=True):
        tree.write("main/simple/c/index.html", b"c")
    assert tree.read("main/simple/b/index.html") is None
    assert tree.read("main/simple/c/index.html") == b"c"


def test_an_unstaged_pass_writes_each_page_at_once(tree: Tree) -> None:
    with tree.render_pass():
        tree.write("main/simple/a/index.html", b"a")
        assert tree.read("main/simple/a/index.html") == b"a"


def test_the_real_flush_runs_on_this_filesystem(tree: Tree) -> None:
    with tree.render_pass(staged=True):
        tree.write("main/simple/a/index.html", b"a")
    assert tree.read("main/simple/a/index.html") == b"a"
