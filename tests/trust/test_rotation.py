"""Root and targets changes: crash safety of ``keys rotate``, root key rotation
(``keys rotate --root``), and expiry warnings with ``keys resign``."""

from __future__ import annotations

import re
from pathlib import Path

import anyio.from_thread
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Targets, Timestamp

from tests.builders import make_wheel
from tests.conftest import AppClient, LiveServer, run_cli
from tests.trust.signed import (
    COMPACT,
    INDEX,
    copy_tree,
    faults,
    http_server,
    run_verify,
    signed_tree,
)
from tests.trust.tufclient import fetch, updater
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.freshness import freshness_pass
from tilsit.index.manage import create_user
from tilsit.instance import Instance, open_instance
from tilsit.trust.layout import file_target
from tilsit.trust.rotation import Change, commit, prepare
from tilsit.trust.settings import trust_settings, utcnow
from tilsit.web.app import TilsitApp

DAY = 86400


def _root(path: Path) -> Root:
    return Metadata[Root].from_bytes(path.read_bytes()).signed


def _keyid(path: Path) -> str:
    return CryptoSigner(load_pem_private_key(path.read_bytes(), None)).public_key.keyid


def _timestamp_signer(tree: Path) -> str:
    raw = (tree / INDEX / "tuf" / "timestamp.json").read_bytes()
    return next(iter(Metadata[Timestamp].from_bytes(raw).signatures))


def _upload_one(instance: Instance, name: str) -> tuple[str, bytes]:
    """Upload a wheel through the in-process app; its target path and bytes."""
    with instance.db.write() as session:
        token = create_token(session, create_user(session, f"u{name}")).secret
    wheel = make_wheel(name, "1.0")
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, TilsitApp(instance))
        assert upload(client, wheel, token).status_code == 200
        portal.call(client.http.aclose)
    return file_target(wheel.sha256, wheel.filename), wheel.data


def _client_verifies(tree: Path, root_v1: bytes, state: Path, target: str, data: bytes) -> None:
    """An ngclient pinned on root v1, over a plain static server of the tree."""
    with http_server(tree) as url:
        client = updater(url, INDEX, root_v1, state)
        client.refresh()
        assert fetch(client, target) == data


# -- 2. crash safety --------------------------------------------------------------------


def _staged(settings: Settings) -> list[str]:
    found = [p.name for p in (settings.data / "keys").iterdir() if p.name.endswith(".next")]
    rotating = settings.data / "trust" / "rotating"
    return found + ([p.name for p in rotating.iterdir()] if rotating.exists() else [])


def test_a_crash_before_the_commit_point_rolls_back(settings: Settings, tmp_path: Path) -> None:
    instance = open_instance(settings)
    target, data = _upload_one(instance, "before_crash")
    keys = instance.signing.keys
    online = (settings.data / "keys" / "online.pem").read_bytes()
    version = prepare(keys, trust_settings(settings), utcnow(), None, Change(online=True))
    assert version == 2
    assert sorted(_staged(settings)) == [
        "2.root.json",
        "2.targets.json",
        "online.pem.next",
        "plan.json",
    ]
    instance.close()  # the process dies here

    again = open_instance(settings)
    try:
        assert _staged(settings) == []  # rolled back
        assert again.signing.keys.root.signed.version == 1
        assert (settings.data / "keys" / "online.pem").read_bytes() == online
        assert not (settings.data / "trust" / "2.root.json").exists()
        assert not (settings.data / "trust" / "2.targets.json").exists()
        root_v1 = (settings.tree_dir / INDEX / "tuf" / "1.root.json").read_bytes()
        _client_verifies(settings.tree_dir, root_v1, tmp_path / "client", target, data)
        # And a rotation can run again afterwards.
        assert run_cli(settings, "keys", "rotate").returncode == 0
        assert _root(settings.data / "trust" / "2.root.json").version == 2
    finally:
        again.close()


def test_a_crash_after_the_commit_point_is_finished(settings: Settings, tmp_path: Path) -> None:
    instance = open_instance(settings)
    target, data = _upload_one(instance, "after_crash")
    root_v1 = (settings.tree_dir / INDEX / "tuf" / "1.root.json").read_bytes()
    client_state = tmp_path / "client"
    _client_verifies(settings.tree_dir, root_v1, client_state, target, data)
    keys = instance.signing.keys
    prepare(keys, trust_settings(settings), utcnow(), None, Change(online=True))
    commit(settings.data)
    # Part of the finish step, then the crash: the targets moved, the key did not.
    staged_targets = settings.data / "trust" / "rotating" / "2.targets.json"
    staged_targets.rename(settings.data / "trust" / "2.targets.json")
    instance.close()

    again = open_instance(settings)
    try:
        assert _staged(settings) == []  # rolled forward
        root = _root(settings.data / "trust" / "2.root.json")
        new_online = _keyid(settings.data / "keys" / "online.pem")
        assert root.roles["timestamp"].keyids == [new_online]
        assert again.signing.keys.targets.signed.version == 2
        # The tree is still signed by the old key until a round re-signs every bin.
        assert _timestamp_signer(settings.tree_dir) != new_online
        assert freshness_pass(again)
        assert _timestamp_signer(settings.tree_dir) == new_online
        _client_verifies(settings.tree_dir, root_v1, client_state, target, data)
        _client_verifies(settings.tree_dir, root_v1, tmp_path / "fresh", target, data)
    finally:
        again.close()


def test_a_crash_before_the_plan_is_written_leaves_nothing(settings: Settings) -> None:
    open_instance(settings).close()
    # A change killed right after it made its staging directory.
    (settings.data / "trust" / "rotating").mkdir()
    assert run_cli(settings, "keys", "show").returncode == 0
    assert _staged(settings) == []


# -- 3. root key rotation ---------------------------------------------------------------


def test_root_key_rotation_keeps_the_chain_and_refuses_a_root_signed_by_new_keys_only(
    live_server: LiveServer, tmp_path: Path
) -> None:
    signed = signed_tree(live_server)
    keys = signed.data / "keys"
    old_root_key = _keyid(keys / "root-1.pem")
    root_v1 = signed.root.read_bytes()
    state = tmp_path / "client"
    client = updater(live_server.url, INDEX, root_v1, state)
    client.refresh()

    shown = live_server.cli("keys", "rotate", "--root", "--root-keys", "2", "--root-threshold", "2")
    assert "2 of 2 sign a new root" in shown.stdout
    tuf = signed.tree / INDEX / "tuf"
    root_v2 = Metadata[Root].from_bytes((tuf / "2.root.json").read_bytes())
    new_keys = {_keyid(keys / "root-1.pem"), _keyid(keys / "root-2.pem")}
    assert set(root_v2.signed.roles["root"].keyids) == new_keys
    assert old_root_key not in new_keys
    assert sorted(p.name for p in keys.iterdir() if p.name.startswith("root")) == [
        "root-1.pem",
        "root-2.pem",
    ]
    # Signed by the old threshold and by every new key; the online key is unchanged.
    assert set(root_v2.signatures) == {old_root_key, *new_keys}
    assert root_v2.signed.roles["timestamp"].keyids == _root(signed.root).roles["timestamp"].keyids

    # A returning client and a fresh one both follow 1 -> 2 and verify targets.
    wheel = make_wheel("after_root_rotation", "1.0")
    signed.upload(wheel)
    for where in (state, tmp_path / "fresh"):
        follower = updater(live_server.url, INDEX, root_v1, where)
        follower.refresh()
        assert fetch(follower, file_target(wheel.sha256, wheel.filename)) == wheel.data
        assert _root(where / "metadata" / "root.json").version == 2

    # The next rotation needs the new keys' threshold: root 3 is signed by both of them.
    live_server.cli("keys", "rotate", "--root", "--root-keys", "1", "--root-threshold", "1")
    root_v3 = Metadata[Root].from_bytes((tuf / "3.root.json").read_bytes())
    assert new_keys <= set(root_v3.signatures)
    chained = run_verify(str(signed.tree), "--root", str(signed.root), "--index", INDEX, "--fresh")
    assert chained.returncode == 0, chained.stdout + chained.stderr

    # A root 2 signed only by the new keys (no old threshold): refused by clients.
    forged_tree = copy_tree(signed.tree, tmp_path / "forged")
    forged = Metadata[Root].from_bytes((tuf / "2.root.json").read_bytes())
    forged.signatures.clear()
    # New keys named in the root they sign, as an attacker without the old keys would.
    attacker = [CryptoSigner.generate_ed25519() for _ in range(2)]
    for keyid in list(forged.signed.roles["root"].keyids):
        forged.signed.revoke_key(keyid, "root")
    for signer in attacker:
        forged.signed.add_key(signer.public_key, "root")
    forged.signed.roles["root"].threshold = 2
    for signer in attacker:
        forged.sign(signer, append=True)
    forged_tuf = forged_tree / INDEX / "tuf"
    (forged_tuf / "2.root.json").write_bytes(forged.to_bytes(COMPACT))
    (forged_tuf / "3.root.json").unlink()
    (forged_tuf / "root.json").write_bytes(forged.to_bytes(COMPACT))
    with pytest.raises(UnsignedMetadataError):
        _root(signed.root).verify_delegate("root", forged.signed_bytes, forged.signatures)
    refused = run_verify(str(forged_tree), "--root", str(signed.root), "--index", INDEX, "--fresh")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "broken root chain" in faults(refused), refused.stdout


def test_root_rotation_with_offline_keys(settings: Settings, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    run_cli(settings, "keys", "init", "--offline", str(offline))
    run_cli(settings, "init")  # the keys come first; then the database (keys kept)
    old = _keyid(offline / "root-1.pem")
    refused = run_cli(settings, "keys", "rotate", "--root", check=False)
    assert refused.returncode == 1
    assert "root-1.pem is missing" in refused.stderr or "root keys" in refused.stderr
    made = run_cli(
        settings,
        "keys",
        "rotate",
        "--root",
        "--root-keys",
        "3",
        "--root-threshold",
        "2",
        "--keys",
        str(offline),
    )
    assert f"new root keys in {offline}" in made.stdout
    assert sorted(p.name for p in offline.iterdir()) == [
        "root-1.pem",
        "root-2.pem",
        "root-3.pem",
        "targets.pem",
    ]
    root = _root(settings.data / "trust" / "2.root.json")
    assert root.roles["root"].threshold == 2
    assert set(root.roles["root"].keyids) == {_keyid(offline / f"root-{n}.pem") for n in (1, 2, 3)}
    assert old not in root.roles["root"].keyids
    assert sorted(p.name for p in (settings.data / "keys").iterdir()) == ["online.pem"]
    assert (settings.tree_dir / INDEX / "tuf" / "2.root.json").is_file()


def test_a_root_rotation_crash_before_commit_keeps_the_old_root_keys(
    settings: Settings, tmp_path: Path
) -> None:
    offline = tmp_path / "offline"
    run_cli(settings, "keys", "init", "--offline", str(offline))
    before = {p.name: p.read_bytes() for p in offline.iterdir()}
    instance = open_instance(settings)
    prepare(
        instance.signing.keys,
        trust_settings(settings),
        utcnow(),
        offline,
        Change(root_keys=2, root_threshold=1),
    )
    assert {"root-next-1.pem", "root-next-2.pem"} <= {p.name for p in offline.iterdir()}
    instance.close()
    open_instance(settings).close()
    assert {p.name: p.read_bytes() for p in offline.iterdir()} == before
    plan = settings.data / "trust" / "rotating" / "plan.json"
    assert not plan.exists()


# -- 4. expiry warnings and keys resign -------------------------------------------------


def _health(instance: Instance) -> dict[str, object]:
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, TilsitApp(instance))
        response = client.get("/_/health")
        portal.call(client.http.aclose)
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_expiry_warnings_and_resign(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TILSIT_TUF_ROOT_EXPIRY", str(10 * DAY))
    monkeypatch.setenv("TILSIT_TUF_TARGETS_EXPIRY", str(20 * DAY))
    offline = tmp_path / "offline"
    run_cli(settings, "keys", "init", "--offline", str(offline))
    instance = open_instance(settings)
    try:
        target, data = _upload_one(instance, "expiring")
        health = _health(instance)
        assert health["status"] == "ok"
        trust = health["trust"]
        assert isinstance(trust, dict)
        assert trust["root"]["version"] == 1
        assert 9 * DAY < trust["root"]["seconds_left"] <= 10 * DAY
        assert 19 * DAY < trust["targets"]["seconds_left"] <= 20 * DAY
        assert trust["indexes"][INDEX]["timestamp"]["seconds_left"] <= DAY
        assert "snapshot" in trust["indexes"][INDEX]
        assert isinstance(health["warnings"], list)
        # Only the TUF warnings here (no base_url also warns that account mail is off).
        warnings = [w for w in health["warnings"] if w.startswith("TUF")]
        assert len(warnings) == 2
        # Expiries are whole seconds (rounded up when signed), so a check made within a
        # second of signing may still see the full 10 (or 20) days left.
        assert re.match(r"TUF root metadata \(version 1\) expires in (9|10) days", warnings[0])
        assert re.match(r"TUF targets metadata \(version 1\) expires in (19|20) days", warnings[1])
        assert all("tilsit keys resign" in w for w in warnings)

        shown = run_cli(settings, "keys", "show").stdout
        assert "root version 1 expires" in shown
        assert "targets version 1 expires" in shown
        assert f"index {INDEX}: timestamp version" in shown
        assert shown.count("warning: TUF") == 2

        # Offline keys are needed; without them nothing changes.
        monkeypatch.delenv("TILSIT_TUF_ROOT_EXPIRY")
        monkeypatch.delenv("TILSIT_TUF_TARGETS_EXPIRY")
        refused = run_cli(settings, "keys", "resign", check=False)
        assert refused.returncode == 1
        assert not (settings.data / "trust" / "2.root.json").exists()
        resigned = run_cli(settings, "keys", "resign", "--keys", str(offline)).stdout
        assert "re-signed index main" in resigned
        assert "warning: TUF" not in resigned
        root = _root(settings.data / "trust" / "2.root.json")
        assert (
            root.roles["root"].keyids
            == _root(settings.data / "trust" / "1.root.json").roles["root"].keyids
        )
        targets = Metadata[Targets].from_bytes(
            (settings.data / "trust" / "2.targets.json").read_bytes()
        )
        assert (targets.signed.expires - utcnow()).days >= 364

        # The running app notices the new versions without a restart.
        health = _health(instance)
        assert isinstance(health["warnings"], list)
        assert [w for w in health["warnings"] if w.startswith("TUF")] == []
        trust = health["trust"]
        assert isinstance(trust, dict)
        assert (trust["root"]["version"], trust["targets"]["version"]) == (2, 2)
        root_v1 = (settings.tree_dir / INDEX / "tuf" / "1.root.json").read_bytes()
        _client_verifies(settings.tree_dir, root_v1, tmp_path / "client", target, data)
    finally:
        instance.close()
