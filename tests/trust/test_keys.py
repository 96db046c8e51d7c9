"""The server's TUF keys: permissions, the environment key, init, offline root, rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio.from_thread
import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Timestamp

from tests.builders import make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.index.manage import create_user
from tilsit.instance import open_instance
from tilsit.trust.keyring import load_keys
from tilsit.trust.keys import ENV_ONLINE_KEY, KeyError_
from tilsit.web.app import TilsitApp


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _timestamp_signer(settings: Settings, index: str = "main") -> str:
    raw = (settings.tree_dir / index / "tuf" / "timestamp.json").read_bytes()
    return next(iter(Metadata[Timestamp].from_bytes(raw).signatures))


def test_generated_keys_are_private_and_a_readable_key_is_refused(settings: Settings) -> None:
    open_instance(settings).close()
    home = settings.data / "keys"
    assert _mode(home) == 0o700
    names = sorted(p.name for p in home.iterdir())
    assert names == ["online.pem", "root-1.pem", "targets.pem"]
    for path in home.iterdir():
        assert _mode(path) == 0o600, path
    os.chmod(home / "online.pem", 0o644)
    with pytest.raises(KeyError_, match=r"online\.pem is readable .* \(mode 0644\).*chmod 600"):
        load_keys(settings.data)
    with pytest.raises(KeyError_, match="chmod 600"):
        open_instance(settings)
    shown = run_cli(settings, "keys", "show", check=False)
    assert shown.returncode == 1
    assert "chmod 600" in shown.stderr


def test_online_key_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = CryptoSigner.generate_ed25519()
    monkeypatch.setenv(ENV_ONLINE_KEY, online.private_bytes.decode())
    instance = open_instance(settings)
    try:
        assert not (settings.data / "keys" / "online.pem").exists()
        root = Metadata[Root].from_bytes(
            (settings.tree_dir / "main" / "tuf" / "1.root.json").read_bytes()
        )
        assert root.signed.roles["timestamp"].keyids == [online.public_key.keyid]
        assert _timestamp_signer(settings) == online.public_key.keyid
    finally:
        instance.close()
    # Another key in the environment is not the one root names: refused, clearly.
    monkeypatch.setenv(ENV_ONLINE_KEY, CryptoSigner.generate_ed25519().private_bytes.decode())
    with pytest.raises(KeyError_, match="is not the one root version 1 names"):
        load_keys(settings.data)
    monkeypatch.setenv(ENV_ONLINE_KEY, "not a key")
    with pytest.raises(KeyError_, match="not an unencrypted PEM private key"):
        load_keys(settings.data)


def test_keys_init_never_overwrites(settings: Settings) -> None:
    made = run_cli(settings, "keys", "init", "--root-keys", "3", "--root-threshold", "2")
    assert "2 of 3 sign a new root" in made.stdout
    before = {p.name: p.read_bytes() for p in (settings.data / "keys").iterdir()}
    again = run_cli(settings, "keys", "init", check=False)
    assert again.returncode == 1
    assert "never overwrites" in again.stderr
    assert {p.name: p.read_bytes() for p in (settings.data / "keys").iterdir()} == before
    bad = run_cli(settings, "keys", "init", "--root-threshold", "2", check=False)
    assert bad.returncode == 1


def test_bad_threshold_is_refused(settings: Settings) -> None:
    bad = run_cli(
        settings, "keys", "init", "--root-keys", "2", "--root-threshold", "3", check=False
    )
    assert bad.returncode == 1
    assert "threshold must be between 1 and the number of root keys" in bad.stderr
    assert not (settings.data / "keys").exists()


def test_offline_root_leaves_only_the_online_key(settings: Settings, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    run_cli(settings, "keys", "init", "--offline", str(offline))
    assert sorted(p.name for p in (settings.data / "keys").iterdir()) == ["online.pem"]
    assert sorted(p.name for p in offline.iterdir()) == ["root-1.pem", "targets.pem"]
    assert _mode(offline) == 0o700
    assert all(_mode(p) == 0o600 for p in offline.iterdir())
    shown = run_cli(settings, "keys", "show")
    assert "1.root.json sha256" in shown.stdout
    # The server still signs every upload with the online key alone.
    instance = open_instance(settings)
    try:
        with instance.db.write() as session:
            token = create_token(session, create_user(session, "alice")).secret
        with anyio.from_thread.start_blocking_portal() as portal:
            client = AppClient(portal, TilsitApp(instance))
            before = _timestamp_version(settings)
            assert upload(client, make_wheel("offline_ok", "1.0"), token).status_code == 200
            assert _timestamp_version(settings) == before + 1
            portal.call(client.http.aclose)
    finally:
        instance.close()
    # Rotation needs the root keys: refused without them, done with --keys.
    refused = run_cli(settings, "keys", "rotate", check=False)
    assert refused.returncode == 1
    assert "missing" in refused.stderr or "root keys" in refused.stderr
    run_cli(settings, "keys", "rotate", "--keys", str(offline))
    assert (settings.tree_dir / "main" / "tuf" / "2.root.json").is_file()
    assert (settings.data / "trust" / "1.root.json").is_file()


def _timestamp_version(settings: Settings) -> int:
    raw = (settings.tree_dir / "main" / "tuf" / "timestamp.json").read_bytes()
    return Metadata[Timestamp].from_bytes(raw).signed.version
