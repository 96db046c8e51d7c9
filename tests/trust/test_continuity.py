"""Version continuity: a tree that is lost, emptied or restored from an old backup and
rebuilt continues above every TUF version it ever published, so returning clients (and
``tilsit verify --state``) see no rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuf.api.metadata import Metadata, Snapshot, Timestamp

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli, start_server, stop
from tests.trust.signed import INDEX, Signed, run_verify, signed_tree
from tests.trust.tufclient import fetch, updater
from tilsit.trust.layout import file_target


def _versions(tree: Path) -> tuple[int, int, int]:
    """(timestamp, snapshot, highest bin) versions the tree publishes now."""
    tuf = tree / INDEX / "tuf"
    ts = Metadata[Timestamp].from_bytes((tuf / "timestamp.json").read_bytes()).signed
    snap = (
        Metadata[Snapshot]
        .from_bytes((tuf / f"{ts.snapshot_meta.version}.snapshot.json").read_bytes())
        .signed
    )
    bins = max(m.version for n, m in snap.meta.items() if n != "targets.json")
    return ts.version, snap.version, bins


def _client_fetches_everything(server: LiveServer, signed: Signed, state: Path) -> None:
    client = updater(server.url, INDEX, signed.root.read_bytes(), state)
    client.refresh()  # raises BadVersionNumberError on a rollback
    for dist in signed.dists:
        assert fetch(client, file_target(dist.sha256, dist.filename)) == dist.data
    assert b"foo" in fetch(client, "simple/foo/index.html")


def _verify(server: LiveServer, signed: Signed, state: Path) -> None:
    result = run_verify(
        server.url, "--root", str(signed.root), "--index", INDEX, "--state", str(state)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _restart(server: LiveServer, log: Path) -> LiveServer:
    return start_server(server.settings, log)


def test_a_deleted_tree_rebuilt_continues_above_every_published_version(
    live_server: LiveServer, tmp_path: Path
) -> None:
    signed = signed_tree(live_server)
    client_state = tmp_path / "client"
    verify_state = tmp_path / "verify"
    _client_fetches_everything(live_server, signed, client_state)
    _verify(live_server, signed, verify_state)
    before = _versions(signed.tree)
    assert before[0] > 2  # rebuilding from nothing without the record would publish 2

    stop(live_server)
    shutil.rmtree(signed.tree)
    run_cli(live_server.settings, "rebuild")
    after = _versions(signed.tree)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    recorded = json.loads(
        (live_server.settings.data / "trust" / "published" / f"{INDEX}.json").read_text()
    )
    assert (recorded["timestamp"], recorded["snapshot"], recorded["bins"]) == after

    server = _restart(live_server, tmp_path / "again.log")
    try:
        _client_fetches_everything(server, signed, client_state)
        _verify(server, signed, verify_state)
    finally:
        stop(server)


def test_a_tree_restored_from_an_old_backup_resigns_above_what_was_published(
    live_server: LiveServer, tmp_path: Path
) -> None:
    signed = signed_tree(live_server)
    backup = tmp_path / "backup"
    stop(live_server)
    shutil.copytree(signed.tree, backup, symlinks=True)
    server = _restart(live_server, tmp_path / "second.log")
    try:
        signed.server = server
        # More rounds than opening and rebuilding the restored tree will sign.
        for version in ("2.0", "2.1", "2.2"):
            signed.upload(make_wheel("later", version))
        client_state = tmp_path / "client"
        _client_fetches_everything(server, signed, client_state)
        published = _versions(signed.tree)
    finally:
        stop(server)
    # The operator restores yesterday's tree and rebuilds it.
    shutil.rmtree(signed.tree)
    shutil.copytree(backup, signed.tree, symlinks=True)
    assert _versions(signed.tree)[0] < published[0]
    run_cli(live_server.settings, "rebuild")
    after = _versions(signed.tree)
    assert all(a > b for a, b in zip(after, published, strict=True)), (published, after)
    server = _restart(live_server, tmp_path / "third.log")
    try:
        signed.server = server
        _client_fetches_everything(server, signed, client_state)
    finally:
        stop(server)
