"""Signing on write: what a TUF client sees after uploads, yanks, deletes and rotations."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient, LiveServer, stop_process
from tests.private import conftest as private_conftest
from tests.private.conftest import Private, basic
from tests.readpath.conftest import need_nginx, start_nginx
from tests.trust.tufclient import fetch, updater
from tests.uploads import upload
from tilsit.instance import Instance
from tilsit.store.tree import file_path
from tilsit.trust.layout import file_target, hashed_path
from tilsit.trust.repository import IndexRepository

# The private-index fixture (an index "sec" made private, with one upload).
sec_index = private_conftest.private


def _tuf(instance: Instance, index: str = "main") -> Path:
    return instance.settings.tree_dir / index / "tuf"


def _timestamp(tuf: Path) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_bytes((tuf / "timestamp.json").read_bytes())


def _snapshot(tuf: Path) -> Metadata[Snapshot]:
    version = _timestamp(tuf).signed.snapshot_meta.version
    return Metadata[Snapshot].from_bytes((tuf / f"{version}.snapshot.json").read_bytes())


def test_fresh_client_from_root_v1_verifies_every_page_and_file(
    live_server: LiveServer, tmp_path: Path
) -> None:
    wheel = make_wheel("Signed_Pkg", "1.0")
    sdist = make_sdist("Signed_Pkg", "1.0")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        secret = live_server.token()
        for dist in (wheel, sdist):
            assert upload(http, dist, secret).status_code == 200
        plain = http.get("/" + file_path(wheel.sha256, wheel.filename)).content
        page = http.get("/simple/signed-pkg/", headers={"Accept": "text/html"}).content
        tuf_root = http.get("/main/tuf/1.root.json")
        assert tuf_root.headers["cache-control"].endswith("immutable, public")
        assert http.get("/main/tuf/timestamp.json").headers["cache-control"] == "no-cache"
        assert http.get("/main/tuf/root.json").headers["cache-control"] == "no-cache"
        assert http.get("/main/tuf/.private").status_code == 404
    root = (live_server.settings.tree_dir / "main" / "tuf" / "1.root.json").read_bytes()
    assert tuf_root.content == root
    client = updater(live_server.url, "main", root, tmp_path / "client")
    client.refresh()
    assert fetch(client, "simple/signed-pkg/index.html") == page
    assert b"signed_pkg-1.0-py3-none-any.whl" in fetch(client, "simple/signed-pkg/index.v1.json")
    assert b"signed-pkg" in fetch(client, "simple/index.html")
    assert b"signed-pkg" in fetch(client, "simple/index.v1.json")
    # The signed wheel is byte for byte what pip downloads from the plain URL.
    assert fetch(client, file_target(wheel.sha256, wheel.filename)) == plain == wheel.data
    assert fetch(client, file_target(sdist.sha256, sdist.filename)) == sdist.data
    assert b"Name: Signed_Pkg" in fetch(
        client, file_target(wheel.sha256, wheel.filename) + ".metadata"
    )
    assert client.get_targetinfo(file_target(sdist.sha256, sdist.filename) + ".metadata") is None
    assert client.get_targetinfo("simple/nothing-here/index.html") is None


def test_upload_signs_touched_bins_then_snapshot_then_timestamp(
    instance: Instance, client: AppClient, token: str
) -> None:
    tuf = _tuf(instance)
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    before = _snapshot(tuf).signed.meta
    ts_before = _timestamp(tuf).signed.version
    wheel = make_wheel("second", "1.0")
    assert upload(client, wheel, token).status_code == 200
    after = _snapshot(tuf).signed.meta
    assert _timestamp(tuf).signed.version == ts_before + 1
    bins = instance.signing.keys.bins
    expected = {
        bins.get_role_for_target(path) + ".json"
        for path in (
            "simple/index.html",
            "simple/index.v1.json",
            "simple/second/index.html",
            "simple/second/index.v1.json",
            file_target(wheel.sha256, wheel.filename),
            file_target(wheel.sha256, wheel.filename) + ".metadata",
        )
    }
    changed = {name for name in after if after[name].version != before[name].version}
    assert changed == expected
    for name in changed:
        assert after[name].version == before[name].version + 1
    # Order on disk: every new bin, then the snapshot, then timestamp.json last.
    snap_version = _timestamp(tuf).signed.snapshot_meta.version
    snap_written = (tuf / f"{snap_version}.snapshot.json").stat().st_mtime_ns
    for name in changed:
        role = name.removesuffix(".json")
        assert (tuf / f"{after[name].version}.{role}.json").stat().st_mtime_ns <= snap_written
    assert snap_written <= (tuf / "timestamp.json").stat().st_mtime_ns
    # The hashed links exist for every signed file.
    assert (
        instance.settings.tree_dir
        / hashed_path("main", file_target(wheel.sha256, wheel.filename), wheel.sha256)
    ).is_file()
    # Re-rendering with nothing changed signs nothing.
    instance.renderer.catch_up()
    assert _timestamp(tuf).signed.version == ts_before + 1


def _targets(instance: Instance, index: str = "main") -> dict[str, str]:
    repo = IndexRepository(instance.tree, index, instance.signing.keys, instance.signing.settings)
    return {path: t.hashes["sha256"] for path, t in repo.targets().items()}


def test_yank_and_delete_update_the_bins(instance: Instance, client: AppClient, token: str) -> None:
    from tests.conftest import run_cli

    keep = make_wheel("gone", "1.0")
    drop = make_wheel("gone", "2.0")
    for dist in (keep, drop):
        assert upload(client, dist, token).status_code == 200
    targets = _targets(instance)
    page = targets["simple/gone/index.v1.json"]
    run_cli(instance.settings, "yank", "gone", "1.0", "--reason", "broken")
    targets = _targets(instance)
    assert targets["simple/gone/index.v1.json"] != page  # the yank is in the signed page
    tree = instance.settings.tree_dir
    signed = (
        tree
        / hashed_path("main", "simple/gone/index.v1.json", targets["simple/gone/index.v1.json"])
    ).read_bytes()
    assert b'"yanked":"broken"' in signed
    assert signed == (tree / "main/simple/gone/index.v1.json").read_bytes()
    run_cli(instance.settings, "delete", "file", drop.filename)
    targets = _targets(instance)
    assert file_target(drop.sha256, drop.filename) not in targets
    assert file_target(drop.sha256, drop.filename) + ".metadata" not in targets
    assert file_target(keep.sha256, keep.filename) in targets
    run_cli(instance.settings, "delete", "project", "gone")
    targets = _targets(instance)
    assert not [path for path in targets if "gone" in path]
    assert not (tree / "main/simple/gone/index.html").exists()


def test_rebuild_resigns_every_bin(instance: Instance, client: AppClient, token: str) -> None:
    assert upload(client, make_wheel("again", "1.0"), token).status_code == 200
    targets = _targets(instance)
    before = _snapshot(_tuf(instance)).signed.meta
    instance.renderer.rebuild()
    after = _snapshot(_tuf(instance)).signed.meta
    assert all(after[n].version == before[n].version + 1 for n in after if n != "targets.json")
    assert _targets(instance) == targets


def test_rotation_makes_root_v2_and_an_old_client_follows_the_chain(
    live_server: LiveServer, tmp_path: Path
) -> None:
    tree = live_server.settings.tree_dir
    root_v1 = (tree / "main" / "tuf" / "1.root.json").read_bytes()
    state = tmp_path / "client"
    updater(live_server.url, "main", root_v1, state).refresh()
    old_online = Metadata[Root].from_bytes(root_v1).signed.roles["timestamp"].keyids
    live_server.cli("keys", "rotate")
    tuf = tree / "main" / "tuf"
    assert (tuf / "1.root.json").read_bytes() == root_v1
    root_v2 = Metadata[Root].from_bytes((tuf / "2.root.json").read_bytes())
    assert root_v2.signed.version == 2
    assert root_v2.signed.roles["timestamp"].keyids != old_online
    assert (tuf / "root.json").read_bytes() == (tuf / "2.root.json").read_bytes()
    # The running server signs the next upload with the new key.
    wheel = make_wheel("after_rotation", "1.0")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert upload(http, wheel, live_server.token()).status_code == 200
    returning = updater(live_server.url, "main", root_v1, state)
    returning.refresh()
    assert fetch(returning, file_target(wheel.sha256, wheel.filename)) == wheel.data
    assert (
        Metadata[Root].from_bytes((state / "metadata" / "root.json").read_bytes()).signed.version
        == 2
    )
    # A client that trusts only the old online key cannot be fooled by it any more.
    fresh = updater(live_server.url, "main", root_v1, tmp_path / "fresh")
    fresh.refresh()
    assert fresh.get_targetinfo("simple/after-rotation/index.html") is not None


def test_tampered_target_fails_the_client(live_server: LiveServer, tmp_path: Path) -> None:
    wheel = make_wheel("tampered", "1.0")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert upload(http, wheel, live_server.token()).status_code == 200
    tree = live_server.settings.tree_dir
    root = (tree / "main" / "tuf" / "1.root.json").read_bytes()
    client = updater(live_server.url, "main", root, tmp_path / "c")
    client.refresh()
    target = file_target(wheel.sha256, wheel.filename)
    link = tree / hashed_path("main", target, wheel.sha256)
    data = bytearray(link.read_bytes())
    data[10] ^= 1
    link.unlink()  # a new inode: the blob keeps its bytes
    link.write_bytes(bytes(data))
    info = client.get_targetinfo(target)
    assert info is not None
    with pytest.raises(RepositoryError):
        client.download_target(info)


def test_private_index_metadata_is_gated(sec_index: Private) -> None:
    private = sec_index
    tuf = "/sec/tuf/timestamp.json"
    assert private.http.get(tuf).status_code == 401
    assert private.http.get("/sec/tuf/1.root.json").status_code == 401
    # TUF metadata is the whole index's: a project's Owner is refused, a reader served.
    assert private.http.get(tuf, headers=basic(private.owner_token)).status_code == 403
    private.grant("reader", "read")
    authed = private.http.get(tuf, headers=basic(private.token("reader")))
    assert authed.status_code == 200
    assert (
        authed.content
        == (private.instance.settings.tree_dir / "sec/tuf/timestamp.json").read_bytes()
    )
    wheel = private.wheel
    target = file_target(wheel.sha256, wheel.filename)
    hashed = "/" + hashed_path("sec", target, wheel.sha256)
    assert private.http.get(hashed).status_code == 401
    got = private.http.get(hashed, headers=basic(private.owner_token))
    assert got.status_code == 200 and got.content == wheel.data
    page = private.http.get("/sec/simple/secret-tool/", headers=basic(private.owner_token))
    digest = hashlib.sha256(
        private.http.get(
            "/sec/simple/secret-tool/",
            headers={**basic(private.owner_token), "Accept": "text/html"},
        ).content
    ).hexdigest()
    assert page.status_code == 200
    assert private.http.get(f"/sec/simple/secret-tool/{digest}.index.html").status_code == 401
    hashed_page = private.http.get(
        f"/sec/simple/secret-tool/{digest}.index.html", headers=basic(private.owner_token)
    )
    assert hashed_page.status_code == 200
    assert hashed_page.headers["cache-control"].startswith("max-age=31536000")


def test_public_hashed_links_survive_a_private_round_trip(sec_index: Private) -> None:
    private = sec_index
    private.set_private("sec", False)
    wheel = private.wheel
    hashed = "/" + hashed_path("sec", file_target(wheel.sha256, wheel.filename), wheel.sha256)
    assert private.http.get(hashed).content == wheel.data
    assert os.path.exists(private.instance.settings.tree_dir / hashed.lstrip("/"))


@pytest.mark.nginx
def test_nginx_serves_the_signed_tree(live_server: LiveServer, tmp_path: Path) -> None:
    need_nginx()
    wheel = make_wheel("via_nginx", "1.0")
    live_server.cli("index", "create", "sec", "--private")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert upload(http, wheel, live_server.token("alice")).status_code == 200
        # --private means create policy listed; "create" implies reading the whole index.
        live_server.cli("index", "grant", "sec", "alice", "create")
        assert upload(http, wheel, live_server.token("alice"), "/sec/legacy/").status_code == 200
    tree = live_server.settings.tree_dir
    process, url = start_nginx(tree, live_server.url, tmp_path / "nginx")
    try:
        root = (tree / "main" / "tuf" / "1.root.json").read_bytes()
        client = updater(url, "main", root, tmp_path / "client")
        client.refresh()
        assert fetch(client, file_target(wheel.sha256, wheel.filename)) == wheel.data
        page = fetch(client, "simple/via-nginx/index.html")
        assert (
            page
            == httpx.get(f"{url}/main/simple/via-nginx/", headers={"Accept": "text/html"}).content
        )
        fetch(client, "simple/via-nginx/index.v1.json")
        fetch(client, "simple/index.v1.json")
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/main/tuf/timestamp.json").headers["cache-control"] == "no-cache"
            assert "immutable" in http.get("/main/tuf/1.root.json").headers["cache-control"]
            assert http.get("/main/tuf/.lock").status_code == 404
            assert http.get("/sec/tuf/timestamp.json").status_code == 401
            auth = ("__token__", live_server.token("alice"))
            assert http.get("/sec/tuf/timestamp.json", auth=auth).status_code == 200
            hashed = "/" + hashed_path(
                "sec", file_target(wheel.sha256, wheel.filename), wheel.sha256
            )
            assert http.get(hashed).status_code == 401
            assert http.get(hashed, auth=auth).content == wheel.data
    finally:
        stop_process(process)
