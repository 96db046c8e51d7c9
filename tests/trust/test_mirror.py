"""A tilsit mirror of a signed tilsit origin carries the origin's TUF metadata.

One origin (a live ``tilsit serve``) and one mirror data directory, synced in
process and served by its own live ``tilsit serve``; the tests run in order.
The unfiltered mirror's metadata is the origin's, byte for byte, so ``tilsit
verify`` of the mirror passes against the ORIGIN's root; a filtered mirror is
signed by the mirror's own root and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root, Timestamp

from tests.builders import make_wheel
from tests.conftest import LiveServer, need, start_server, stop
from tests.trust.signed import INDEX, faults, first_dists, flip_byte, run_verify, wait_for
from tests.trust.test_tufjs import tufjs
from tests.upstream.conftest import Upstream, cli, downstream, make_mirror, start_upstream, sync
from tilsit.config import Settings
from tilsit.instance import Instance


@dataclass
class World:
    origin: Upstream
    settings: Settings
    instance: Instance
    server: LiveServer

    @property
    def origin_tree(self) -> Path:
        return self.origin.live.settings.tree_dir

    @property
    def origin_root(self) -> Path:
        return self.origin_tree / INDEX / "tuf" / "1.root.json"

    @property
    def origin_url(self) -> str:
        return f"{self.origin.url}/{INDEX}/simple/"

    @property
    def tree(self) -> Path:
        return self.settings.tree_dir

    def timestamp(self, tree: Path, index: str) -> bytes:
        return (tree / index / "tuf" / "timestamp.json").read_bytes()

    def origin_upload(self, *dists: object) -> None:
        before = Metadata[Timestamp].from_bytes(self.timestamp(self.origin_tree, INDEX))
        self.origin.upload(*dists)  # type: ignore[arg-type]
        wait_for(
            lambda: (
                Metadata[Timestamp]
                .from_bytes(self.timestamp(self.origin_tree, INDEX))
                .signed.version
                > before.signed.version
            ),
            "the origin's new timestamp",
        )

    def verify(self, index: str, root: Path, *extra: str, faketime: str | None = None) -> object:
        return run_verify(
            f"{self.server.url}/{index}/", "--root", str(root), "--fresh", *extra, faketime=faketime
        )


@pytest.fixture(scope="module")
def world(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("tuf-mirror")
    (root / "origin").mkdir()
    origin = start_upstream(root / "origin", postgres_base)
    settings, instance = downstream(root / "mirror", postgres_base)
    server: LiveServer | None = None
    try:
        wait_for(
            (origin.live.settings.tree_dir / INDEX / "tuf" / "timestamp.json").is_file, "origin tuf"
        )
        origin.upload(*first_dists())
        make_mirror(instance, f"{origin.url}/{INDEX}/simple/")
        server = start_server(settings, root / "mirror.log")
        yield World(origin, settings, instance, server)
    finally:
        if server is not None:
            stop(server)
        instance.close()
        stop(origin.live)


def _status(world: World, index: str = "mirror") -> dict[str, object]:
    result = cli(world.settings, "mirror", "status", index)
    assert result.exit_code == 0, result.output
    doc: dict[str, object] = json.loads(result.output)
    return doc


def test_mirror_carries_the_origin_metadata(world: World) -> None:
    report = sync(world.instance)
    assert report.ok, report.summary()
    # The origin's timestamp, byte for byte: the mirror signed nothing.
    assert world.timestamp(world.tree, "mirror") == world.timestamp(world.origin_tree, INDEX)
    for name in ("1.root.json", "root.json"):
        assert (world.tree / "mirror/tuf" / name).read_bytes() == (
            world.origin_tree / INDEX / "tuf" / name
        ).read_bytes()
    tuf = _status(world)["tuf"]
    assert isinstance(tuf, dict)
    assert tuf["mode"] == "carried"
    assert tuf["trust"] == "first use"
    published = json.loads((world.tree / "mirror/mirror-status.json").read_bytes())
    assert published["tuf"]["mode"] == "carried"
    result = world.verify("mirror", world.origin_root)
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.stdout.startswith("OK: ")  # type: ignore[attr-defined]
    # The mirror's own keys do not sign it.
    own = world.tree / "mirror/tuf/1.root.json"
    assert own.read_bytes() != (world.tree / "main/tuf/1.root.json").read_bytes()


def test_a_freshness_pass_leaves_carried_metadata_alone(world: World) -> None:
    from tilsit.freshness import freshness_pass

    before = world.timestamp(world.tree, "mirror")
    freshness_pass(world.instance)
    assert world.timestamp(world.tree, "mirror") == before


def test_an_upload_at_the_origin_then_a_sync_verifies(world: World) -> None:
    world.origin_upload(make_wheel("foo", "1.1"))
    report = sync(world.instance)
    assert report.ok, report.summary()
    assert world.timestamp(world.tree, "mirror") == world.timestamp(world.origin_tree, INDEX)
    result = world.verify("mirror", world.origin_root, "--project", "foo")
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
    page = (world.tree / "mirror/simple/foo/index.html").read_bytes()
    assert b"foo-1.1-py3-none-any.whl" in page
    assert page == (world.origin_tree / INDEX / "simple/foo/index.html").read_bytes()


def test_old_carried_versions_are_swept_after_the_grace_period(world: World) -> None:
    from tilsit.freshness import freshness_pass

    world.origin_upload(make_wheel("foo", "1.2"))
    report = sync(world.instance)
    assert report.ok, report.summary()
    tuf = world.tree / "mirror" / "tuf"
    snapshots = sorted(tuf.glob("*.snapshot.json"), key=lambda p: int(p.name.split(".")[0]))
    assert len(snapshots) >= 2, "each sync after an origin change carries a new snapshot"
    current = Metadata[Timestamp].from_bytes(world.timestamp(world.tree, "mirror"))
    timestamp_before = world.timestamp(world.tree, "mirror")
    # Within the grace period nothing is swept: a client may be mid-update.
    freshness_pass(world.instance)
    assert sorted(tuf.glob("*.snapshot.json")) == sorted(snapshots)
    # Three hours on (the default grace is one hour): every superseded version goes.
    aged = time.time() - 3 * 3600
    for entry in tuf.iterdir():
        os.utime(entry, (aged, aged))
    lines = freshness_pass(world.instance)
    [line] = [line for line in lines if line.startswith("mirror (carried): swept")]
    # foo's page changed with each release: its older signed copies are gone too.
    assert not line.endswith(" 0 links"), line
    left = [p.name for p in tuf.glob("*.snapshot.json")]
    assert left == [f"{current.signed.snapshot_meta.version}.snapshot.json"]
    # Still the origin's metadata, unchanged and verifying against the origin's root.
    assert world.timestamp(world.tree, "mirror") == timestamp_before
    result = world.verify("mirror", world.origin_root)
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]


def test_a_tampered_page_on_the_mirror_is_named_and_the_next_sync_repairs_it(world: World) -> None:
    page = world.tree / "mirror/simple/foo/index.html"
    flip_byte(page, 10)
    result = world.verify("mirror", world.origin_root, "--project", "foo")
    assert result.returncode == 1, result.stdout  # type: ignore[attr-defined]
    assert "tampered file" in faults(result)  # type: ignore[arg-type]
    assert "simple/foo" in result.stdout  # type: ignore[attr-defined]
    report = sync(world.instance)
    assert report.ok, report.summary()
    result = world.verify("mirror", world.origin_root, "--project", "foo")
    assert result.returncode == 0, result.stdout  # type: ignore[attr-defined]


def test_a_sync_whose_targets_do_not_match_the_signed_hashes_publishes_nothing(
    world: World,
) -> None:
    world.origin_upload(make_wheel("bar-baz", "0.2"))
    origin_page = world.origin_tree / INDEX / "simple/bar-baz/index.html"
    import hashlib

    hashed = origin_page.with_name(
        f"{hashlib.sha256(origin_page.read_bytes()).hexdigest()}.index.html"
    )
    before = world.timestamp(world.tree, "mirror")
    flip_byte(hashed, 10)  # the origin (or the wire) serves a page that is not the signed one
    try:
        report = sync(world.instance, attempts=1)
        assert not report.ok
        assert report.error is not None
        assert "tampered file" in report.error and "simple/bar-baz/index.html" in report.error
        assert world.timestamp(world.tree, "mirror") == before
        assert "tampered file" in str(_status(world)["last_error"])
    finally:
        flip_byte(hashed, 10)
    report = sync(world.instance)
    assert report.ok, report.summary()
    assert world.timestamp(world.tree, "mirror") == world.timestamp(world.origin_tree, INDEX)


def test_a_mirror_that_stops_syncing_fails_once_the_origin_timestamp_expires(
    world: World,
) -> None:
    need(shutil.which("faketime") is not None, "faketime")
    ok = world.verify("mirror", world.origin_root, "--project", "foo", faketime="+12h")
    assert ok.returncode == 0, ok.stdout  # type: ignore[attr-defined]
    stale = world.verify("mirror", world.origin_root, "--project", "foo", faketime="+2d")
    assert stale.returncode == 2, stale.stdout  # type: ignore[attr-defined]
    assert "expired timestamp" in faults(stale)  # type: ignore[arg-type]


def test_a_pinned_origin_root(world: World, tmp_path: Path) -> None:
    result = cli(
        world.settings,
        "index", "create", "pinned", "--mirror", world.origin_url,
        "--upstream-root", str(world.origin_root),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = sync(world.instance, "pinned")
    assert report.ok, report.summary()
    tuf = _status(world, "pinned")["tuf"]
    assert isinstance(tuf, dict) and tuf["trust"] == "pinned"
    # A root the origin is not signed by: the sync publishes nothing and says why.
    result = cli(
        world.settings,
        "index", "create", "wrong", "--mirror", world.origin_url,
        "--upstream-root", str(world.tree / "main/tuf/1.root.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = sync(world.instance, "wrong", attempts=1)
    assert not report.ok
    assert "bad signature" in str(report.error)
    not_root = tmp_path / "not-root.json"
    not_root.write_text("{}")
    result = cli(
        world.settings,
        "index", "create", "bad", "--mirror", world.origin_url, "--upstream-root", str(not_root),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "not TUF root metadata" in result.output


def test_a_filtered_mirror_signs_with_its_own_root_and_says_so(world: World) -> None:
    make_mirror(world.instance, world.origin_url, "filtered", filters={"block": ["bar-baz"]})
    report = sync(world.instance, "filtered")
    assert report.ok, report.summary()
    tuf = _status(world, "filtered")["tuf"]
    assert isinstance(tuf, dict)
    assert tuf["mode"] == "re-signed"
    assert str(tuf["reason"]).startswith("filtered")
    own = world.tree / "filtered/tuf/1.root.json"
    root = Metadata[Root].from_bytes(own.read_bytes())
    # Signed by the mirror's root keys, inside the root clients pin.
    assert root.signed.unrecognized_fields["x-tilsit-resigned"] == {
        "upstream": world.origin_url,
        "reason": tuf["reason"],
    }
    root.verify_delegate(Root.type, root)
    result = world.verify("filtered", own)
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
    assert f"RE-SIGNED: a mirror of {world.origin_url}" in result.stdout  # type: ignore[attr-defined]
    assert "filtered" in result.stdout  # type: ignore[attr-defined]
    # tuf-js, which tilsit did not write, still loads a root with the extra field.
    js = tufjs(f"{world.server.url}/filtered/", own, "simple/foo/index.html")
    assert js.returncode == 0, js.stdout + js.stderr
    assert js.stdout.startswith("OK simple/foo/index.html")
    against_origin = world.verify("filtered", world.origin_root)
    assert against_origin.returncode == 2, against_origin.stdout  # type: ignore[attr-defined]
    assert world.timestamp(world.tree, "filtered") != world.timestamp(world.origin_tree, INDEX)


def test_an_origin_rebin_then_a_sync_verifies_and_serves_gzip(world: World) -> None:
    """The origin re-cuts its bins (tilsit keys rebin): the next sync carries the new
    targets.json and bins, and the mirror still verifies against the origin's root; the
    carried versioned metadata has its gzip copies too, which the mirror serves."""
    import httpx

    done = world.origin.live.cli("keys", "rebin", "--bits", "11")
    assert f"{INDEX}: re-cut into 2048 bins" in done.stdout, done.stdout
    world.origin_upload(make_wheel("foo", "1.3"))
    report = sync(world.instance)
    assert report.ok, report.summary()
    assert world.timestamp(world.tree, "mirror") == world.timestamp(world.origin_tree, INDEX)
    result = world.verify("mirror", world.origin_root, "--json")
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
    assert json.loads(result.stdout)["bins"] == 2048  # type: ignore[attr-defined]
    stamp = Metadata[Timestamp].from_bytes(world.timestamp(world.tree, "mirror"))
    name = f"{stamp.signed.snapshot_meta.version}.snapshot.json"
    plain = (world.tree / "mirror/tuf" / name).read_bytes()
    assert (world.tree / "mirror/tuf" / f"{name}.gz").is_file()
    got = httpx.get(
        f"{world.server.url}/mirror/tuf/{name}", headers={"Accept-Encoding": "gzip"}, timeout=30
    )
    assert got.headers["content-encoding"] == "gzip" and got.content == plain
