"""Each attack on a copy of a tilsit tree is detected, named, and exits with its code.

Target faults exit 1, metadata faults exit 2. The trees are made by a live
tilsit server (an "old" copy, then one more upload, then a "new" copy); each test
attacks its own ``cp -a`` copy and runs ``tilsit verify`` on the directory (one
attack also over HTTP). Forged metadata is signed with the server's own online
key, as a thief of that key or a broken mirror could publish it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Targets

from tests.builders import make_wheel
from tests.conftest import create_database, need, start_server, stop
from tests.trust.signed import (
    INDEX,
    copy_tree,
    faults,
    flip_byte,
    forge_bin,
    forge_timestamp,
    hashed_file,
    hashed_page,
    http_server,
    latest,
    online_signer,
    run_verify,
    sign_write,
    signed_tree,
    tuf_dir,
)
from tilsit.config import load_settings
from tilsit.store.tree import file_path

WHEEL = "foo-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class Trees:
    old: Path
    new: Path
    root: Path
    online: CryptoSigner
    root_signer: CryptoSigner
    wheel_target: str


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory, postgres_base: str | None) -> Iterator[Trees]:
    base = tmp_path_factory.mktemp("attacks")
    settings = load_settings(
        overrides={"data": base / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    server = start_server(settings, base / "server.log")
    try:
        signed = signed_tree(server)
        old = copy_tree(signed.tree, base / "old")
        signed.upload(make_wheel("foo", "1.1"))
        new = copy_tree(signed.tree, base / "new")
    finally:
        stop(server)
    root = base / "root.json"
    shutil.copyfile(signed.root, root)
    root_pem = (settings.data / "keys" / "root-1.pem").read_bytes()
    wheel = next(d for d in signed.dists if d.filename == WHEEL)
    yield Trees(
        old,
        new,
        root,
        online_signer(settings.data),
        CryptoSigner(load_pem_private_key(root_pem, None)),
        file_path(wheel.sha256, wheel.filename),
    )


@pytest.fixture
def tree(trees: Trees, tmp_path: Path) -> Path:
    """A fresh copy of the newest tree, for one attack."""
    return copy_tree(trees.new, tmp_path / "tree")


def check(
    trees: Trees, tree: Path, fault: str, code: int, *extra: str, faketime: str | None = None
) -> str:
    result = run_verify(str(tree), "--root", str(trees.root), "--fresh", *extra, faketime=faketime)
    assert result.returncode == code, result.stdout + result.stderr
    assert set(faults(result)) == {fault}, result.stdout
    return result.stdout


def test_control_the_untouched_copy_verifies(trees: Trees, tree: Path) -> None:
    result = run_verify(str(tree), "--root", str(trees.root), "--fresh")
    assert result.returncode == 0 and faults(result) == [], result.stdout


def test_one_byte_changed_in_a_file(trees: Trees, tree: Path) -> None:
    flip_byte(hashed_file(tree, WHEEL))
    out = check(trees, tree, "tampered file", 1)
    assert trees.wheel_target in out


def test_one_byte_changed_in_a_page(trees: Trees, tree: Path) -> None:
    flip_byte(hashed_page(tree, "foo"), 20)
    out = check(trees, tree, "tampered file", 1)
    assert "simple/foo/index.html" in out


def test_plain_name_pip_fetches_replaced(trees: Trees, tree: Path) -> None:
    """The hashed copy is intact; the name pip uses holds other bytes."""
    plain = tree / trees.wheel_target
    data = bytearray(plain.read_bytes())
    data[-1] ^= 1
    plain.unlink()  # break the hard link, as an editing mirror would
    plain.write_bytes(bytes(data))
    out = check(trees, tree, "tampered file", 1)
    assert "plain name" in out and trees.wheel_target in out


def test_file_removed(trees: Trees, tree: Path) -> None:
    hashed_file(tree, WHEEL).unlink()
    out = check(trees, tree, "missing file", 1)
    assert trees.wheel_target in out


def test_tampered_file_over_http(trees: Trees, tree: Path) -> None:
    flip_byte(hashed_file(tree, WHEEL))
    with http_server(tree) as url:
        result = run_verify(f"{url}/{INDEX}/", "--root", str(trees.root), "--fresh")
    assert result.returncode == 1 and set(faults(result)) == {"tampered file"}, result.stdout


def test_expired_timestamp_freeze(trees: Trees, tree: Path) -> None:
    """Nothing re-signed, the clock two days on: the copy is stale."""
    need(shutil.which("faketime") is not None, "faketime")
    out = check(trees, tree, "expired timestamp", 2, faketime="+2d")
    assert "timestamp.json" in out


def test_expired_bin(trees: Trees, tree: Path) -> None:
    """A fresh timestamp and snapshot cannot make an expired bin pass."""
    from datetime import UTC, datetime, timedelta

    def expire(bin_: Targets) -> None:
        bin_.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    forge_bin(tree, trees.online, trees.wheel_target, expire)
    check(trees, tree, "expired bins", 2)


def test_rollback_older_timestamp_after_newer(trees: Trees, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("--root", str(trees.root), "--state", str(state))
    newer = run_verify(str(trees.new), *args)
    assert newer.returncode == 0, newer.stdout
    older = run_verify(str(trees.old), *args)
    assert older.returncode == 2 and faults(older) == ["rollback"], older.stdout
    assert "timestamp" in older.stdout
    # Without the state from the earlier run, the old copy is merely old.
    assert run_verify(str(trees.old), "--root", str(trees.root), "--fresh").returncode == 0


def test_snapshot_not_matching_timestamp(trees: Trees, tree: Path) -> None:
    snapshots = sorted(
        tuf_dir(tree).glob("*.snapshot.json"), key=lambda p: int(p.name.split(".")[0])
    )
    shutil.copyfile(snapshots[-2], snapshots[-1])
    out = check(trees, tree, "mix-and-match", 2)
    assert "snapshot" in out


def test_bin_not_matching_snapshot(trees: Trees, tree: Path) -> None:
    role = Metadata[Targets].from_bytes(latest(tree, "targets").read_bytes()).signed
    assert role.delegations is not None and role.delegations.succinct_roles is not None
    name = role.delegations.succinct_roles.get_role_for_target(file_path(*_foo_1_1(tree)))
    versions = sorted(tuf_dir(tree).glob(f"*.{name}.json"), key=lambda p: int(p.name.split(".")[0]))
    assert len(versions) >= 2
    shutil.copyfile(versions[-2], versions[-1])
    out = check(trees, tree, "mix-and-match", 2)
    assert name in out


def _foo_1_1(tree: Path) -> tuple[str, str]:
    link = next((tree / INDEX / "packages").rglob("*.foo-1.1-py3-none-any.whl"))
    return link.name.split(".", 1)[0], "foo-1.1-py3-none-any.whl"


def test_signed_page_links_an_unlisted_file(trees: Trees, tree: Path) -> None:
    """The wheel leaves its bin (validly re-signed); foo's page still links it."""
    forge_bin(tree, trees.online, trees.wheel_target, lambda b: b.targets.pop(trees.wheel_target))
    out = check(trees, tree, "unlisted path", 1)
    assert WHEEL in out


def test_gap_in_the_root_chain(trees: Trees, tree: Path) -> None:
    """3.root.json (new online key) is published, 2.root.json is not."""
    meta = tuf_dir(tree)
    newer = CryptoSigner.generate_ed25519()
    root = Metadata[Root].from_bytes((meta / "1.root.json").read_bytes())
    old_id = trees.online.public_key.keyid
    for role in ("timestamp", "snapshot"):
        root.signed.revoke_key(old_id, role)
        root.signed.add_key(newer.public_key, role)
    root.signed.version = 3
    sign_write(root, trees.root_signer, meta / "3.root.json")
    forge_timestamp(tree, newer)
    out = check(trees, tree, "broken root chain", 2)
    assert "2.root.json is missing" in out


def test_gap_alone_is_reported(trees: Trees, tree: Path) -> None:
    """Clients stop at the gap silently; verify still names it."""
    shutil.copyfile(tuf_dir(tree) / "1.root.json", tuf_dir(tree) / "3.root.json")
    out = check(trees, tree, "broken root chain", 2)
    assert "2.root.json" in out


def test_next_root_not_signed_by_current_root(trees: Trees, tree: Path) -> None:
    meta = tuf_dir(tree)
    root = Metadata[Root].from_bytes((meta / "1.root.json").read_bytes())
    root.signed.version = 2
    sign_write(root, CryptoSigner.generate_ed25519(), meta / "2.root.json")
    out = check(trees, tree, "broken root chain", 2)
    assert "root" in out


def test_oversized_timestamp(trees: Trees, tree: Path) -> None:
    (tuf_dir(tree) / "timestamp.json").write_bytes(b" " * 20000)
    check(trees, tree, "oversized metadata", 2)
