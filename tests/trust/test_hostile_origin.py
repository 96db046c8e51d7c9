"""A hostile origin signs target paths that leave its index: the mirror refuses them.

A mirror that carries its origin's TUF metadata writes each signed target
under its own index. The origin here is a copy of a real tilsit origin's tree,
served statically, whose bins the test re-signs with the origin's own online
key (what an origin's operator, or whoever holds that key, can publish): every
signature verifies, only the paths are hostile. The downstream server also
hosts ``requests`` in its default index ``main``, the page the attack aims at.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tuf.api.metadata import TargetFile, Targets

from tests.builders import make_wheel
from tests.conftest import LiveServer, start_server, stop
from tests.trust.signed import INDEX, copy_tree, first_dists, forge_bin, online_signer, wait_for
from tests.uploads import upload
from tests.upstream.conftest import Upstream, downstream, make_mirror, start_upstream, sync
from tests.upstream.static import StaticServer
from tilsit.config import Settings
from tilsit.instance import Instance

HOSTILE_PAGE = (
    b"<!DOCTYPE html>\n<html><body>\n"
    b'<a href="../../../packages/ev/il/requests-6.6.6-py3-none-any.whl">'
    b"requests-6.6.6-py3-none-any.whl</a>\n</body></html>\n"
)
_names = itertools.count()


@dataclass
class World:
    origin: Upstream
    settings: Settings
    instance: Instance
    server: LiveServer
    root: Path

    @property
    def tree(self) -> Path:
        return self.settings.tree_dir

    @property
    def victim_page(self) -> Path:
        return self.tree / "main" / "simple" / "requests" / "index.html"


@pytest.fixture(scope="module")
def world(postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("hostile-origin")
    (root / "origin").mkdir()
    origin = start_upstream(root / "origin", postgres_base)
    settings, instance = downstream(root / "mirror", postgres_base)
    server: LiveServer | None = None
    try:
        timestamp = origin.live.settings.tree_dir / INDEX / "tuf" / "timestamp.json"
        wait_for(timestamp.is_file, "the origin's first timestamp")
        first = timestamp.read_bytes()
        origin.upload(*first_dists())
        wait_for(lambda: timestamp.read_bytes() != first, "the origin signing its uploads")
        server = start_server(settings, root / "mirror.log")
        with httpx.Client(base_url=server.url, timeout=60) as http:
            response = upload(http, make_wheel("requests", "2.0"), server.token())
            assert response.status_code == 200, response.text
        world = World(origin, settings, instance, server, root)
        wait_for(world.victim_page.is_file, "the hosted requests page")
        yield world
    finally:
        if server is not None:
            stop(server)
        instance.close()
        stop(origin.live)


def _hostile_origin(
    world: World, target: str, data: bytes, fetched_at: str
) -> tuple[StaticServer, Path]:
    """A copy of the origin whose bins also sign ``target`` (``data``), served statically.

    ``fetched_at`` is where a TUF client's request for the target's hashed name
    lands once its URL is normalised: the copy serves ``data`` there, so only the
    path check stands between the origin and the write.
    """
    copy = copy_tree(world.origin.live.settings.tree_dir, world.root / f"copy-{next(_names)}")
    digest = hashlib.sha256(data).hexdigest()

    def sign_target(bin_: Targets) -> None:
        bin_.targets[target] = TargetFile(len(data), {"sha256": digest}, target)

    forge_bin(copy, online_signer(world.origin.live.settings.data), target, sign_target)
    landing = copy / fetched_at.format(sha256=digest)
    landing.parent.mkdir(parents=True, exist_ok=True)
    landing.write_bytes(data)
    return StaticServer(copy), copy


@pytest.mark.parametrize(
    "target",
    ["simple/../../main/simple/requests/index.html", "../main/simple/requests/index.html"],
)
def test_a_signed_page_path_that_climbs_into_another_index_is_refused(
    world: World, target: str
) -> None:
    served, copy = _hostile_origin(
        world, target, HOSTILE_PAGE, "main/simple/requests/{sha256}.index.html"
    )
    name = f"climb{next(_names)}"
    before = world.victim_page.read_bytes()
    try:
        make_mirror(world.instance, f"{served.url}/{INDEX}/simple/", name)
        report = sync(world.instance, name, attempts=1)
    finally:
        served.stop()
    assert not report.ok
    assert report.error is not None
    assert "unsafe target path" in report.error, report.error
    assert target in report.error, report.error
    # The other index's page is untouched, on disk and as served.
    assert world.victim_page.read_bytes() == before
    assert not list(world.victim_page.parent.glob("*.index.html.*"))
    digest = hashlib.sha256(HOSTILE_PAGE).hexdigest()
    assert not (world.victim_page.parent / f"{digest}.index.html").exists()
    page = httpx.get(f"{world.server.url}/simple/requests/", timeout=30)
    assert page.status_code == 200
    assert "requests-2.0-py3-none-any.whl" in page.text
    assert "6.6.6" not in page.text
    # Nothing of the origin's was published for the mirror either.
    origin_timestamp = (copy / INDEX / "tuf" / "timestamp.json").read_bytes()
    assert (world.tree / name / "tuf" / "timestamp.json").read_bytes() != origin_timestamp


def test_a_signed_file_path_naming_other_bytes_in_the_shared_packages_is_refused(
    world: World,
) -> None:
    # The origin signs its own bytes under the hash directories of a file it does
    # not have (a hash a lock file shows): the shared packages/ is content-addressed,
    # and the first link there would be served for that file from then on.
    awaited = make_wheel("awaited", "1.0")
    own = make_wheel("awaited", "1.0", members={"awaited/evil.py": b"raise SystemExit\n"})
    sha = awaited.sha256
    target = f"packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{awaited.filename}"
    landing = f"{INDEX}/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{{sha256}}.{awaited.filename}"
    served, _copy = _hostile_origin(world, target, own.data, landing)
    name = f"poison{next(_names)}"
    try:
        make_mirror(world.instance, f"{served.url}/{INDEX}/simple/", name)
        report = sync(world.instance, name, attempts=1)
    finally:
        served.stop()
    assert not report.ok
    assert report.error is not None
    assert "unsafe target path" in report.error and target in report.error, report.error
    assert not (world.tree / target).exists()
    assert not world.instance.blobs.exists(own.sha256)
