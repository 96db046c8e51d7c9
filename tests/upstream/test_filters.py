"""Mirror filters: tables for each stage, then a filtered sync of a static tree."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_sdist, make_wheel
from tests.upstream.conftest import (
    check_consistent,
    cli,
    make_mirror,
    sync,
    tree_files,
    tree_projects,
)
from tests.upstream.static import StaticServer, StaticTree
from tilsit.config import Settings
from tilsit.index.upstream import UpstreamFile, UpstreamProject
from tilsit.instance import Instance
from tilsit.store.tree import file_path
from tilsit.upstream.filters import Filters, InvalidFilter, parse_size


@pytest.mark.parametrize(
    ("options", "name", "wanted"),
    [
        ({}, "anything", True),
        ({"allow": ["requests"]}, "requests", True),
        ({"allow": ["requests"]}, "Requests", True),
        ({"allow": ["requests"]}, "urllib3", False),
        ({"allow": ["requests>=2.30"]}, "requests", True),  # specifiers filter versions only
        ({"allow_regex": ["django-.*"]}, "django-rest", True),
        ({"allow_regex": ["django-.*"]}, "django", False),  # whole-name match
        ({"allow": ["flask"], "allow_regex": ["django.*"]}, "flask", True),
        ({"block": ["evil"]}, "Evil", False),
        ({"block": ["evil<2"]}, "evil", True),  # only some versions blocked
        ({"block_regex": [".*-nightly"]}, "tf-nightly", False),
        ({"allow": ["evil"], "block": ["evil"]}, "evil", False),  # block wins
    ],
)
def test_project_names(options: dict[str, Any], name: str, wanted: bool) -> None:
    assert Filters.from_options(options).wants_project(name) is wanted


@pytest.mark.parametrize(
    ("options", "version", "wanted"),
    [
        ({}, "1.0", True),
        ({}, "not-pep440", True),
        ({"prereleases": False}, "2.0rc1", False),
        ({"prereleases": False}, "2.0.dev3", False),
        ({"prereleases": False}, "2.0", True),
        ({"prereleases": False}, "2.0.post1", True),
        ({"allow": ["demo>=2.30"]}, "2.31", True),
        ({"allow": ["demo>=2.30"]}, "2.29", False),
        ({"allow": ["demo>=2.30"]}, "3.0b1", True),  # a specifier does not hide pre-releases
        ({"allow": ["demo>=2.30"]}, "not-pep440", False),
        ({"allow": ["demo>=2.30", "demo==1.0"]}, "1.0", True),
        ({"allow": ["demo>=2.30", "demo"]}, "1.0", True),  # an unqualified entry allows all
        ({"allow": ["demo>=2.30"], "allow_regex": ["dem.*"]}, "1.0", True),
        ({"allow": ["other>=2"]}, "1.0", True),  # another project's rule
        ({"block": ["demo<2"]}, "1.5", False),
        ({"block": ["demo<2"]}, "2.0", True),
        ({"block": ["demo==2.0.*"]}, "2.0.3", False),
    ],
)
def test_versions(options: dict[str, Any], version: str, wanted: bool) -> None:
    assert Filters.from_options(options).wants_version("demo", version) is wanted


def _file(filename: str, size: int = 100) -> UpstreamFile:
    return UpstreamFile(filename, f"https://x/{filename}", "a" * 64, size, None)


PAGE = UpstreamProject(
    "demo",
    5,
    [
        _file("demo-1.0.tar.gz"),
        _file("demo-1.0-py3-none-any.whl"),
        _file("demo-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", 5000),
        _file("demo-2.0-cp312-cp312-win_amd64.whl"),
        _file("demo-2.0-cp312-cp312-macosx_11_0_arm64.whl"),
        _file("demo-2.0.tar.gz", -1),
        _file("demo-3.0rc1-py3-none-any.whl"),
        _file("demo-0.9.egg"),
        _file("demo-0.9.zip"),
    ],
    versions=["0.9", "1.0", "2.0", "3.0rc1"],
)


@pytest.mark.parametrize(
    ("options", "kept", "versions"),
    [
        ({}, [f.filename for f in PAGE.files], ["0.9", "1.0", "2.0", "3.0rc1"]),
        (
            {"platforms": ["manylinux*_x86_64"]},
            [
                "demo-1.0.tar.gz",
                "demo-1.0-py3-none-any.whl",
                "demo-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "demo-2.0.tar.gz",
                "demo-3.0rc1-py3-none-any.whl",
                "demo-0.9.zip",  # a (legacy) sdist always passes; an egg never does
            ],
            ["0.9", "1.0", "2.0", "3.0rc1"],
        ),
        (
            {"max_file_size": 1000},
            [f.filename for f in PAGE.files if "manylinux" not in f.filename],
            ["0.9", "1.0", "2.0", "3.0rc1"],
        ),
        (
            {"prereleases": False, "latest": 1},
            [
                "demo-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "demo-2.0-cp312-cp312-win_amd64.whl",
                "demo-2.0-cp312-cp312-macosx_11_0_arm64.whl",
                "demo-2.0.tar.gz",
            ],
            ["2.0"],
        ),
        (
            {"latest": 2, "platforms": ["win_amd64"]},
            [
                "demo-2.0-cp312-cp312-win_amd64.whl",
                "demo-2.0.tar.gz",
                "demo-3.0rc1-py3-none-any.whl",
            ],
            ["2.0", "3.0rc1"],
        ),
        (
            {"allow": ["demo==1.0"]},
            ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl"],
            ["1.0"],
        ),
    ],
)
def test_files(options: dict[str, Any], kept: list[str], versions: list[str]) -> None:
    filtered = Filters.from_options(options).select(PAGE)
    assert [f.filename for f in filtered.project.files] == kept
    assert list(filtered.project.versions) == versions
    assert len(filtered.dropped) == len(PAGE.files) - len(kept)
    assert all(reason for _name, reason in filtered.dropped)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1000", 1000), ("5k", 5000), ("50M", 50_000_000), ("50MB", 50_000_000), ("2GiB", 2 << 30)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "options",
    [
        {"allow": ["requests[socks]"]},
        {"allow": ["requests; python_version<'3'"]},
        {"allow": ["not a requirement!"]},
        {"allow": "requests"},
        {"block_regex": ["("]},
        {"prereleases": "no"},
        {"latest": 0},
        {"max_file_size": -1},
        {"colour": "blue"},
    ],
)
def test_invalid_filters(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidFilter):
        Filters.from_options(options)


def test_round_trip_and_fingerprint() -> None:
    options = {"allow": ["a>=1"], "prereleases": False, "latest": 3, "max_file_size": 10}
    filters = Filters.from_options(options)
    assert filters.to_options() == options
    assert Filters.from_options(filters.to_options()) == filters
    assert filters.fingerprint() != Filters().fingerprint()
    assert not Filters().active


@pytest.fixture
def static(tmp_path: Path) -> Iterator[tuple[StaticTree, StaticServer]]:
    tree = StaticTree(tmp_path / "static")
    tree.write()
    server = StaticServer(tree.root)
    yield tree, server
    server.stop()


def test_a_filtered_sync_fetches_and_serves_only_what_passes(
    static: tuple[StaticTree, StaticServer], mirror_instance: tuple[Settings, Instance]
) -> None:
    tree, server = static
    settings, instance = mirror_instance
    linux = make_wheel("app", "2.0", tag="cp312-cp312-manylinux_2_17_x86_64")
    windows = make_wheel("app", "2.0", tag="cp312-cp312-win_amd64")
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1500))
    big = make_sdist("app", "2.0", members={"app-2.0/blob.bin": noise})  # ~48 kB, incompressible
    old = make_wheel("app", "1.0")
    rc = make_wheel("app", "3.0rc1")
    for dist in (old, linux, windows, big, rc):
        tree.add("app", dist)
    tree.add("blocked", make_wheel("blocked", "1.0"))
    tree.add("other", make_wheel("other", "1.0"))
    make_mirror(instance, f"{server.url}/simple/")
    result = cli(
        settings,
        "mirror",
        "configure",
        "mirror",
        "--block",
        "blocked",
        "--no-prereleases",
        "--platform",
        "manylinux*_x86_64",
        "--max-file-size",
        "20k",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["filters"] == {
        "block": ["blocked"],
        "prereleases": False,
        "platforms": ["manylinux*_x86_64"],
        "max_file_size": 20000,
    }

    report = sync(instance)
    assert report.ok, report.failed
    assert sorted(tree_projects(instance, "mirror")) == ["app", "other"]
    assert sorted(tree_files(instance, "mirror", "app")) == sorted([old.filename, linux.filename])
    check_consistent(instance)
    asked = {path.rsplit("/", 1)[-1] for path, _status in server.taken()}
    # Never fetched: the blocked project's page, a pre-release, a Windows wheel. The big
    # sdist's size is not on an HTML page: its download stopped at the limit, unstored.
    assert "blocked" not in asked and rc.filename not in asked and windows.filename not in asked
    assert not instance.blobs.exists(big.sha256)
    assert not instance.tree.path(file_path(big.sha256, big.filename)).exists()

    # Tighter filters: the next sync re-reads everything and unpublishes what is excluded now.
    result = cli(settings, "mirror", "configure", "mirror", "--latest", "1")
    assert result.exit_code == 0, result.output
    report = sync(instance)
    assert report.ok, report.failed
    assert sorted(tree_files(instance, "mirror", "app")) == [linux.filename]
    assert not instance.tree.path(file_path(old.sha256, old.filename)).exists()
    check_consistent(instance)

    # No filters at all: everything comes in.
    result = cli(settings, "mirror", "configure", "mirror", "--clear")
    assert json.loads(result.stdout)["filters"] == {}
    report = sync(instance)
    assert report.ok, report.failed
    assert sorted(tree_projects(instance, "mirror")) == ["app", "blocked", "other"]
    assert len(tree_files(instance, "mirror", "app")) == 5
    check_consistent(instance)


def test_configure_refuses_bad_filters_and_other_kinds(
    mirror_instance: tuple[Settings, Instance],
) -> None:
    settings, instance = mirror_instance
    make_mirror(instance, "http://127.0.0.1:9/simple/")
    bad = cli(settings, "mirror", "configure", "mirror", "--allow", "x[y]")
    assert bad.exit_code == 1 and "only a name and a version specifier" in bad.stderr
    hosted = cli(settings, "mirror", "configure", "main", "--latest", "2")
    assert hosted.exit_code == 1 and "hosted index" in hosted.stderr
