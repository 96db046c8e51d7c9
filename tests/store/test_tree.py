"""The tree writer never writes, links or reads through a symlink that leaves the tree.

:meth:`Tree.path` checks each directory on the way with ``lstat`` and, within a
render pass, remembers those it checked; these tests plant symlinks where a
render would meet them, inside and outside a pass.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from tilsit.spec.treepaths import UnsafeTreePath
from tilsit.store.tree import Tree

PAGE = "mirror/simple/victim/index.html"


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "tree", tmp_path / "tmp")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    place = tmp_path / "outside"
    (place / "simple" / "victim").mkdir(parents=True)
    (place / "simple" / "victim" / "index.html").write_bytes(b"not the tree's\n")
    return place


def _refused_everywhere(tree: Tree, relative: str, blob: Path) -> None:
    for in_pass in (False, True):
        with tree.render_pass() if in_pass else contextlib.nullcontext():
            with pytest.raises(UnsafeTreePath, match="leaves the tree"):
                tree.write(relative, b"replaced\n")
            with pytest.raises(UnsafeTreePath, match="leaves the tree"):
                tree.link(relative + ".link", blob)
            with pytest.raises(UnsafeTreePath, match="leaves the tree"):
                tree.read(relative)


def test_a_symlinked_directory_out_of_the_tree_is_refused(
    tree: Tree, outside: Path, tmp_path: Path
) -> None:
    (tree.root / "mirror").symlink_to(outside)
    blob = tmp_path / "blob"
    blob.write_bytes(b"blob\n")
    _refused_everywhere(tree, PAGE, blob)
    assert (outside / "simple" / "victim" / "index.html").read_bytes() == b"not the tree's\n"
    assert sorted(p.name for p in (outside / "simple" / "victim").iterdir()) == ["index.html"]


def test_a_symlinked_last_segment_out_of_the_tree_is_refused(
    tree: Tree, outside: Path, tmp_path: Path
) -> None:
    tree.write("mirror/simple/other/index.html", b"ok\n")
    (tree.root / "mirror" / "simple" / "victim").mkdir()
    (tree.root / PAGE).symlink_to(outside / "simple" / "victim" / "index.html")
    with tree.render_pass(), pytest.raises(UnsafeTreePath, match="leaves the tree"):
        tree.write(PAGE, b"replaced\n")
    with pytest.raises(UnsafeTreePath, match="leaves the tree"):
        tree.read(PAGE)
    assert (outside / "simple" / "victim" / "index.html").read_bytes() == b"not the tree's\n"


def test_a_pass_forgets_what_it_checked_when_it_ends(
    tree: Tree, outside: Path, tmp_path: Path
) -> None:
    # A pass checks mirror/simple/victim and remembers it; the directory is then
    # swapped for a symlink out of the tree: the next pass checks it again.
    with tree.render_pass():
        tree.write(PAGE, b"first\n")
        tree.write("mirror/simple/victim/index.v1.json", b"{}")
    shutil.rmtree(tree.root / "mirror" / "simple" / "victim")
    (tree.root / "mirror" / "simple" / "victim").symlink_to(outside / "simple" / "victim")
    blob = tmp_path / "blob"
    blob.write_bytes(b"blob\n")
    _refused_everywhere(tree, PAGE, blob)
    assert (outside / "simple" / "victim" / "index.html").read_bytes() == b"not the tree's\n"


def test_a_symlink_that_stays_in_the_tree_is_followed(tree: Tree) -> None:
    tree.write("main/simple/a/index.html", b"a\n")
    (tree.root / "alias").symlink_to(tree.root / "main")
    with tree.render_pass():
        tree.write("alias/simple/a/index.html", b"through the alias\n")
        assert tree.path("alias/simple/a/index.html") == tree.real_root / "main/simple/a/index.html"
    assert tree.read("main/simple/a/index.html") == b"through the alias\n"


def test_a_tree_whose_root_is_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "tree").symlink_to(tmp_path / "disk")
    tree = Tree(tmp_path / "tree", tmp_path / "tmp")
    with tree.render_pass():
        tree.write("main/simple/a/index.html", b"a\n")
    tree.remove("main/simple/a/index.html")
    assert list((tmp_path / "disk").iterdir()) == []  # emptied directories went too
