"""The one check of paths from outside (issue 9, item 2): what the tree takes and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tilsit.spec.treepaths import UnsafeTreePath, check_relative, check_target, tree_path
from tilsit.store.tree import Tree

SHA = "ab" + "cd" + "e" * 60
OTHER = "f" * 64
FILES = f"packages/ab/cd/{'e' * 60}"
WHEEL = "foo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("simple/index.html", "page"),
        ("simple/index.v1.json", "page"),
        ("simple/foo-bar/index.html", "page"),
        ("simple/foo-bar/index.v1.json", "page"),
        (f"{FILES}/{WHEEL}", "file"),
        (f"{FILES}/{WHEEL}.metadata", "file"),
        (f"{FILES}/foo-1.0.zip", "file"),
    ],
)
def test_targets_taken(path: str, shape: str) -> None:
    assert check_target(path) == shape
    assert tree_path("mirror", path) == f"mirror/{path}"


@pytest.mark.parametrize(
    "path",
    [
        f"simple/{OTHER}.index.html",
        f"simple/foo/{OTHER}.index.v1.json",
        f"{FILES}/{OTHER}.{WHEEL}",
        f"{FILES}/{OTHER}.{WHEEL}.metadata",
        "tuf/3.bins-0a.json",
        "tuf/timestamp.json",
        "tuf/1.root.json",
        "pypi/foo-bar/json",
        "pypi/foo-bar/1.0.post1/json",
        "pypi/foo-bar/1!2.0+local/json",
        "pypi/pytz/2004d/json",
    ],
)
def test_hashed_and_metadata_names_are_paths_but_never_targets(path: str) -> None:
    assert tree_path("mirror", path) == f"mirror/{path}"
    with pytest.raises(UnsafeTreePath, match="cannot be a target"):
        check_target(path)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../other/simple/requests/index.html", "'..' segment"),
        ("simple/../../other/simple/requests/index.html", "'..' segment"),
        ("simple/./index.html", "'.' segment"),
        ("simple//index.html", "empty segment"),
        ("simple/foo/", "empty segment"),
        ("/simple/index.html", "absolute"),
        ("simple\\..\\..\\other/index.html", "backslash"),
        ("simple/foo/index.html\x00", "control character U+0000"),
        ("simple/foo\n/index.html", "control character U+000A"),
        ("simple/%2e%2e/index.html", "percent-encoding"),
        ("simple/%2E%2E%2Fother/index.html", "percent-encoding"),
        ("simple/f\u212a/index.html", "U+212A"),
        ("simple/Foo/index.html", "not a normalized project name"),
        ("simple/foo--bar/index.html", "not a normalized project name"),
        ("simple/foo/other.html", "not a path of an index"),
        ("simple/a/b/index.html", "not a path of an index"),
        ("index.html", "not a path of an index"),
        ("tuf/../x.json", "'..' segment"),
        (".private", "not a path of an index"),
        ("mirror-status.json", "not a path of an index"),
        ("packages/ab/cd/short/foo-1.0.zip", "sha256 split"),
        (f"packages/AB/CD/{'E' * 60}/{WHEEL}", "sha256 split"),
        (f"{FILES}/../../x.whl", "'..' segment"),
        (f"{FILES}/sub/{WHEEL}", "not a path of an index"),
        (f"{FILES}/README.txt", "not a distribution"),
        (f"{FILES}/foo\u212a-1.0-py3-none-any.whl", "U+212A"),
        (f"{FILES}/foo-1.0-py3-none-{'x' * 250}.whl", "at most 180"),
        (f"{FILES}/{OTHER}.foo-1.0-py3-none-{'x' * 250}.whl.metadata", "at most 180"),
        ("pypi/foo/../../../main/simple/requests/json", "'..' segment"),
        ("pypi/foo/.hidden/json", "cannot name a release"),
        ("pypi/foo/-1/json", "cannot name a release"),
        ("pypi/Foo/1.0/json", "not a normalized project name"),
        ("pypi/foo/1.0/other", "not a path of an index"),
    ],
)
def test_refused_with_the_reason(path: str, reason: str) -> None:
    with pytest.raises(UnsafeTreePath) as raised:
        tree_path("mirror", path)
    assert reason in str(raised.value)
    assert raised.value.path == path


def test_the_shared_packages_take_only_plain_files() -> None:
    assert tree_path("mirror", f"{FILES}/{WHEEL}", shared=True) == f"{FILES}/{WHEEL}"
    for path in ("simple/index.html", f"{FILES}/{OTHER}.{WHEEL}", "tuf/timestamp.json"):
        with pytest.raises(UnsafeTreePath, match="shared packages"):
            tree_path("mirror", path, shared=True)


@pytest.mark.parametrize("index", ["", "..", "../main", "Main", "a/b", "-x"])
def test_the_index_is_one_index_name(index: str) -> None:
    with pytest.raises(UnsafeTreePath, match="not an index name"):
        tree_path(index, "simple/index.html")


@pytest.mark.parametrize(
    "path",
    ["", "..", "a/../b", "/abs", "a//b", "a/", "a\\b", "a\x00b", "a/" + "x" * 256],
)
def test_the_tree_writer_refuses_paths_that_could_climb(path: str) -> None:
    with pytest.raises(UnsafeTreePath):
        check_relative(path)


def test_the_tree_writer_takes_its_own_names() -> None:
    for path in (".serial", "main/.private", "main/mirror-status.json", "main/pypi/foo/1.0/json"):
        assert check_relative(path) == path.split("/")


def test_the_tree_writer_refuses_a_path_that_leaves_its_index(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "tree", tmp_path / "tmp")
    tree.write("main/simple/requests/index.html", b"the hosted page\n")
    blob = tmp_path / "blob"
    blob.write_bytes(b"other bytes\n")
    for path in (
        "mirror/simple/../../main/simple/requests/index.html",
        "mirror/../main/simple/requests/index.html",
    ):
        with pytest.raises(UnsafeTreePath, match=r"'\.\.' segment"):
            tree.write(path, b"replaced\n")
        with pytest.raises(UnsafeTreePath):
            tree.link(path, blob)
    assert tree.read("main/simple/requests/index.html") == b"the hosted page\n"


def test_the_tree_links_a_name_that_fills_a_segment(tmp_path: Path) -> None:
    # The staging name once embedded the target's ("link-<pid>-<name>"): past NAME_MAX.
    tree = Tree(tmp_path / "tree", tmp_path / "tmp")
    blob = tmp_path / "blob"
    blob.write_bytes(b"bytes\n")
    name = f"{OTHER}.{'a' * 170}-1.0.tar.gz.metadata"
    assert len(name) == 255
    tree.link(f"main/{FILES}/{name}", blob)
    assert tree.read(f"main/{FILES}/{name}") == b"bytes\n"
    assert list((tmp_path / "tmp").iterdir()) == []
