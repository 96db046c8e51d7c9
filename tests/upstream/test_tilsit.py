"""tilsit mirroring tilsit: a real upstream over TLS (test CA) with absolute file URLs.

The tests of this module run in order on one upstream and one downstream mirror:
first sync, no-op sync, one upload, a yank, deletions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.blobs import served_bytes
from tests.builders import Dist, make_sdist, make_wheel
from tests.conftest import stop
from tests.upstream.conftest import (
    HTML,
    JSON,
    Upstream,
    check_consistent,
    cli,
    downstream,
    journal_serial,
    make_mirror,
    mirror_status,
    start_upstream,
    state_of,
    sync,
    tree_files,
    tree_page,
    tree_projects,
    without_urls,
)
from tilsit.index.manage import delete_file, delete_release, set_yanked
from tilsit.instance import Instance
from tilsit.store.tree import file_path


@dataclass
class World:
    upstream: Upstream
    instance: Instance
    dists: dict[str, Dist]


DISTS = [
    make_wheel("alpha", "1.0"),
    make_sdist("alpha", "1.0"),
    make_wheel("alpha", "1.1", requires_python=">=3.9, <4"),
    make_wheel("beta", "0.1"),
    make_sdist("beta", "0.2rc1"),
    make_wheel("Gamma.Name", "2.0"),
    make_sdist("delta", "3.0"),
]


@pytest.fixture(scope="module")
def world(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("tilsit-upstream")
    upstream = start_upstream(root / "up", postgres_base, tls=True)
    _settings, instance = downstream(root / "down", postgres_base)
    try:
        upstream.upload(*DISTS)
        assert upstream.ca_pem is not None
        make_mirror(instance, upstream.simple_url, ca_bundle=str(upstream.ca_pem))
        yield World(upstream, instance, {d.filename: d for d in DISTS})
    finally:
        instance.close()
        stop(upstream.live)


def _assert_same_pages(world: World) -> list[str]:
    """The mirror's simple pages equal the upstream's, byte for byte, modulo file URLs."""
    root = world.upstream.get("/simple/")
    projects = [p["name"] for p in root.json()["projects"]]
    for accept in (JSON, HTML):
        served = world.upstream.get("/simple/", accept).content
        assert tree_page(world.instance, "mirror", None, accept) == served
        for name in projects:
            served = world.upstream.get(f"/simple/{name}/", accept).content
            mirrored = tree_page(world.instance, "mirror", name, accept)
            assert mirrored is not None, f"{name} is missing from the mirror"
            assert without_urls(mirrored) == without_urls(served), name
    assert sorted(tree_projects(world.instance, "mirror")) == sorted(projects)
    return projects


def test_first_sync_copies_everything(world: World) -> None:
    mark = world.upstream.mark()
    report = sync(world.instance)
    served = world.upstream.requests(mark)
    assert report.ok, report.failed
    projects = _assert_same_pages(world)
    assert projects == ["alpha", "beta", "delta", "gamma-name"]
    # Files identical to what was uploaded, metadata files where the upstream has them.
    for project in projects:
        for filename, sha256 in tree_files(world.instance, "mirror", project).items():
            stored = served_bytes(
                world.instance.tree.path(file_path(sha256, filename)), world.instance.blobs
            )
            assert stored == world.dists[filename].data
    assert check_consistent(world.instance) == len(DISTS)
    wheels = sum(d.filename.endswith(".whl") for d in DISTS)
    # One root, one page per project, every file, every wheel's metadata: nothing else.
    assert report.requests == 1 + len(projects) + len(DISTS) + wheels
    assert len(served) == report.requests
    assert (report.synced, report.files) == (len(projects), len(DISTS) + wheels)
    upstream_serial = world.upstream.get("/simple/").json()["meta"]["_last-serial"]
    state = state_of(world.instance)
    assert state.upstream_serial == state.synced_serial == upstream_serial
    assert state.last_success is not None and state.last_error is None
    status = mirror_status(world.instance)
    assert status["synced_serial"] == status["upstream_serial"] == upstream_serial
    assert status["upstream"] == world.upstream.simple_url
    assert status["last_error"] is None and status["last_success"]


def test_no_op_sync_costs_one_request(world: World) -> None:
    before = journal_serial(world.instance)
    pages = {p: tree_page(world.instance, "mirror", p) for p in ["alpha", "beta"]}
    mark = world.upstream.mark()
    report = sync(world.instance)
    assert report.ok
    assert report.requests == 1
    assert world.upstream.requests(mark) == [("GET", "/simple/", 304)]
    assert (report.synced, report.files, report.removed) == (0, 0, 0)
    assert journal_serial(world.instance) == before
    assert {p: tree_page(world.instance, "mirror", p) for p in pages} == pages


def test_one_upload_fetches_exactly_that_project(world: World) -> None:
    new = make_wheel("beta", "0.3")
    world.upstream.upload(new)
    world.dists[new.filename] = new
    mark = world.upstream.mark()
    report = sync(world.instance)
    paths = [path for _method, path, _status in world.upstream.requests(mark)]
    assert report.ok
    assert paths[0] == "/simple/"
    assert paths[1] == "/simple/beta/"
    assert sorted(paths[2:]) == sorted(
        [
            f"/{file_path(new.sha256, new.filename)}",
            f"/{file_path(new.sha256, new.filename)}.metadata",
        ]
    )
    assert report.requests == 4
    assert report.synced == 1
    assert new.filename in tree_files(world.instance, "mirror", "beta")
    _assert_same_pages(world)
    check_consistent(world.instance)


def test_yank_propagates(world: World) -> None:
    world.upstream.change(
        lambda session, index: set_yanked(
            session, index, "beta", "0.1", yanked=True, reason="broken build"
        )
    )
    report = sync(world.instance)
    assert report.ok and report.synced == 1
    page = json.loads(tree_page(world.instance, "mirror", "beta") or b"")
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked["beta-0.1-py3-none-any.whl"] == "broken build"
    assert yanked["beta-0.3-py3-none-any.whl"] is False
    _assert_same_pages(world)


def test_deleted_file_and_project_are_removed(world: World) -> None:
    gone = world.dists["alpha-1.0.tar.gz"]
    before = journal_serial(world.instance)
    world.upstream.change(lambda session, index: delete_file(session, index, gone.filename))
    world.upstream.live.cli("delete", "project", "delta")
    report = sync(world.instance)
    assert report.ok, report.failed
    assert report.removed == 1 and report.synced == 1
    assert "delta" not in tree_projects(world.instance, "mirror")
    assert tree_page(world.instance, "mirror", "delta") is None
    assert gone.filename not in tree_files(world.instance, "mirror", "alpha")
    assert not world.instance.tree.path(file_path(gone.sha256, gone.filename)).exists()
    delta = world.dists["delta-3.0.tar.gz"]
    assert not world.instance.tree.path(file_path(delta.sha256, delta.filename)).exists()
    # Journaled: the mirror's own serial moved, so its downstreams see the removals.
    assert journal_serial(world.instance) > before
    _assert_same_pages(world)
    check_consistent(world.instance)
    state = state_of(world.instance)
    assert state.synced_serial == world.upstream.get("/simple/").json()["meta"]["_last-serial"]


def test_deleted_release_is_removed(world: World) -> None:
    world.upstream.change(lambda session, index: delete_release(session, index, "beta", "0.2rc1"))
    report = sync(world.instance)
    assert report.ok and report.synced == 1
    assert "beta-0.2rc1.tar.gz" not in tree_files(world.instance, "mirror", "beta")
    _assert_same_pages(world)


def test_the_cli_syncs_and_reports(world: World) -> None:
    settings = world.instance.settings
    result = cli(settings, "mirror", "sync", "mirror", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "mirror mirror: 0 project(s) synced" in result.stdout
    assert "1 request(s)" in result.stdout
    result = cli(settings, "mirror", "status", "mirror")
    status = json.loads(result.stdout)
    assert status["synced_serial"] == status["upstream_serial"]
    wrong = cli(settings, "mirror", "sync", "main")
    assert wrong.exit_code == 1
    assert "not a mirror" in wrong.stderr
