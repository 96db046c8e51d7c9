"""Shared TUF signing is on by default on PostgreSQL (``tuf_shared``, tilsit.trust.shared).

Every path that signs an index goes through ``IndexRepository.round``, which stores what
it signed: after a key rotation or a re-cut, the next round starts from the stored
rotation (nothing it replaced comes back), the stored rows are the tree's bytes, a second
host's empty tree takes exactly those bytes, and ``tilsit verify`` passes.
"""

from __future__ import annotations

from pathlib import Path

import anyio.from_thread
import pytest
from sqlalchemy import event, select
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from tests.builders import make_wheel
from tests.conftest import BACKEND, AppClient
from tests.trust.signed import INDEX, run_verify
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings, load_settings
from tilsit.db.models import TufMetadataRow
from tilsit.index.manage import create_index, create_user
from tilsit.instance import Instance
from tilsit.store.tree import Tree
from tilsit.trust.repository import IndexRepository
from tilsit.trust.rotation import rebin, rotate_online_key
from tilsit.trust.settings import trust_settings, utcnow
from tilsit.trust.shared import SharedMetadata
from tilsit.web.app import TilsitApp

postgresql_only = pytest.mark.skipif(
    BACKEND != "postgresql", reason="shared signing needs PostgreSQL (TILSIT_TEST_DATABASE)"
)


def _upload(instance: Instance, name: str) -> None:
    """Upload a wheel through the in-process app (its render signs a round)."""
    with instance.db.write() as session:
        token = create_token(session, create_user(session, f"u{name}")).secret
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, TilsitApp(instance))
        assert upload(client, make_wheel(name, "1.0"), token).status_code == 200
        portal.call(client.http.aclose)


def _stored(instance: Instance) -> dict[str, TufMetadataRow]:
    return _stored_of(instance, INDEX)


def _stored_of(instance: Instance, index: str) -> dict[str, TufMetadataRow]:
    with instance.db.read() as session:
        rows = session.scalars(select(TufMetadataRow).where(TufMetadataRow.index_name == index))
        return {row.role: row for row in rows}


def _tuf(instance: Instance) -> Path:
    return instance.settings.tree_dir / INDEX / "tuf"


def _assert_stored_is_the_tree(instance: Instance) -> Metadata[Snapshot]:
    """Every row is the tree's current bytes, and lists exactly what the snapshot lists."""
    tuf = _tuf(instance)
    stored = _stored(instance)
    timestamp = (tuf / "timestamp.json").read_bytes()
    assert stored["timestamp"].data == timestamp
    version = Metadata[Timestamp].from_bytes(timestamp).signed.snapshot_meta.version
    assert stored["snapshot"].data == (tuf / f"{version}.snapshot.json").read_bytes()
    snapshot = Metadata[Snapshot].from_bytes(stored["snapshot"].data)
    listed = {
        name.removesuffix(".json"): meta.version for name, meta in snapshot.signed.meta.items()
    }
    assert {role: row.version for role, row in stored.items()} == {
        **listed,
        "snapshot": version,
        "timestamp": stored["timestamp"].version,
    }
    for role, number in listed.items():
        assert stored[role].data == (tuf / f"{number}.{role}.json").read_bytes(), role
    return snapshot


def _verifies(instance: Instance) -> None:
    root = _tuf(instance) / "1.root.json"
    tree = instance.settings.tree_dir
    result = run_verify(str(tree), "--root", str(root), "--index", INDEX, "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr


def test_shared_signing_is_on_by_default_on_postgresql_only(instance: Instance) -> None:
    assert Settings().tuf_shared
    assert (instance.signing.shared is not None) == (BACKEND == "postgresql")
    off = load_settings(overrides={"tuf_shared": False}, environ={})
    assert not off.tuf_shared  # an explicit false still turns it off


@postgresql_only
def test_a_round_that_changes_every_bin_is_stored_in_one_statement(instance: Instance) -> None:
    """A new index signs every bin; storing them costs one statement, not one per bin."""
    statements: list[tuple[str, int]] = []

    def record(conn: object, cursor: object, sql: str, params: object, *rest: object) -> None:
        many = len(params) if isinstance(params, list | tuple) and rest and rest[-1] else 1
        statements.append((sql.split(None, 1)[0].upper(), many))

    with instance.db.write() as session:
        create_index(session, "fresh", kind="hosted")
    event.listen(instance.db.engine, "before_cursor_execute", record)
    try:
        instance.renderer.catch_up()
    finally:
        event.remove(instance.db.engine, "before_cursor_execute", record)
    rows = [row for row in _stored_of(instance, "fresh").values() if row.role.startswith("bins")]
    assert len(rows) == 2**instance.signing.keys.bins.bit_length
    inserts = [many for verb, many in statements if verb == "INSERT"]
    assert inserts == [len(rows) + 3], statements  # the bins, targets, snapshot and timestamp


@postgresql_only
def test_a_key_rotation_and_a_recut_hold_across_the_next_rounds(
    instance: Instance, tmp_path: Path
) -> None:
    signing = instance.signing
    trust = trust_settings(instance.settings)
    _upload(instance, "before_rotation")
    _assert_stored_is_the_tree(instance)

    # A new online key: the round re-signs every bin with it and stores them.
    old_key = signing.keys.online.public_key.keyid
    signing.use_keys(rotate_online_key(signing.keys, trust, utcnow()))
    new_key = signing.keys.online.public_key.keyid
    signing.repo(INDEX).round(utcnow())
    _upload(instance, "after_rotation")  # the next round pulls the stored state first
    snapshot = _assert_stored_is_the_tree(instance)
    stored = _stored(instance)
    assert set(Metadata[Timestamp].from_bytes(stored["timestamp"].data).signatures) == {new_key}
    for role, row in stored.items():
        assert old_key not in Metadata.from_bytes(row.data).signatures, role
    assert snapshot.signed.meta["targets.json"].version == signing.keys.targets.signed.version
    _verifies(instance)

    # A re-cut into twice the bins: the next round keeps the new cut.
    bits = signing.keys.bins.bit_length + 1
    signing.use_keys(rebin(signing.keys, trust, utcnow(), None, bits))
    signing.repo(INDEX).round(utcnow())
    _upload(instance, "after_recut")
    snapshot = _assert_stored_is_the_tree(instance)
    targets = Metadata[Targets].from_bytes(_stored(instance)["targets"].data).signed
    assert targets.delegations is not None and targets.delegations.succinct_roles is not None
    assert targets.delegations.succinct_roles.bit_length == bits
    assert snapshot.signed.meta["targets.json"].version == signing.keys.targets.signed.version
    _verifies(instance)

    # Another host's tree takes exactly the stored bytes, even where it holds a file of
    # the same name it signed on its own (before shared signing was on).
    other = tmp_path / "other"
    tree = Tree(other / "tree", other / "tmp")
    repo = IndexRepository(tree, INDEX, signing.keys, signing.repo(INDEX).settings)
    stored = _stored(instance)
    role = max(snapshot.signed.meta, key=lambda name: snapshot.signed.meta[name].version)
    own = f"{INDEX}/tuf/{stored[role.removesuffix('.json')].version}.{role}"
    tree.write(own, b"signed by that host alone")
    SharedMetadata(instance.db).pull(repo)
    assert tree.read(own) == stored[role.removesuffix(".json")].data
    mine = _tuf(instance) / "timestamp.json"
    assert tree.read(f"{INDEX}/tuf/timestamp.json") == mine.read_bytes()
    assert repo.targets() == signing.repo(INDEX).targets()
