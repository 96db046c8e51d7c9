"""Crash-safe changes to root and targets: online key rotation, root key rotation, re-signing.

Every change takes three steps, each a function so a test can stop between them:

1. :func:`prepare` writes everything new under temporary names: the plan
   ``<data>/trust/rotating/plan.json``, the new online key ``<data>/keys/online.pem.next``,
   new root keys ``<secret>/root-next-<i>.pem``, the new targets
   ``rotating/<M+1>.targets.json`` and, last, the new root ``rotating/<N+1>.root.json``.
2. :func:`commit` renames ``rotating/<N+1>.root.json`` into ``<data>/trust/``: the commit
   point. Nothing the server reads has changed before it.
3. :func:`finish` moves the targets and the keys into place, retires the old root keys
   and removes ``rotating/``.

:func:`recover` runs whenever the keys are loaded (under ``<data>/trust.lock``, which a
change holds throughout): a plan whose root is not in ``<data>/trust/`` is **rolled
back** (its staged files deleted: the old keys and metadata were never touched); a
committed plan is **rolled forward** by :func:`finish`, which is idempotent. So a crash
anywhere leaves a data directory the server opens, with either the old key set or the
new one, never a mix. Each index's bins are then re-signed by the next signing round
that finds its timestamp signed by another key (see ``IndexRepository.round``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Delegations, Metadata, Root, SuccinctRoles, Targets

from tilsit.store.fs import fsync_dir
from tilsit.trust.keys import (
    ENV_ONLINE_KEY,
    KeyError_,
    KeySet,
    TrustSettings,
    check_private,
    keys_dir,
    load_signer,
    read_keys,
    replace_private,
    root_signers,
    sign_offline,
    targets_signer,
    trust_dir,
    write_private,
    write_public,
)

__all__ = [
    "Change",
    "commit",
    "finish",
    "prepare",
    "rebin",
    "recover",
    "resign",
    "rotate_online_key",
    "rotate_root_keys",
    "trust_lock",
]

_NEXT_ROOT_KEY = re.compile(r"root-next-(\d+)\.pem")
_ROOT_KEY = re.compile(r"root-(\d+)\.pem")


@dataclass(frozen=True)
class Change:
    """What a new root (and targets) version changes."""

    online: bool = False  # a new online key (root and targets name it)
    root_keys: int = 0  # >0: that many new root keys replace the old ones
    root_threshold: int = 1
    targets: bool = False  # a new targets version (re-signed, new expiry)


def _rotating(data: Path) -> Path:
    return trust_dir(data) / "rotating"


def _next_online(data: Path) -> Path:
    return keys_dir(data) / "online.pem.next"


@contextmanager
def trust_lock(data: Path) -> Iterator[None]:
    """Held by a change from prepare to finish, and by every load of the keys."""
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / "trust.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _new_root(
    keys: KeySet, settings: TrustSettings, now: datetime, change: Change, online: Signer
) -> tuple[Metadata[Root], list[CryptoSigner]]:
    root = Metadata[Root].from_bytes(keys.roots[-1])
    if change.online:
        for role in ("snapshot", "timestamp"):
            root.signed.revoke_key(keys.online.public_key.keyid, role)
            root.signed.add_key(online.public_key, role)
    new_root_signers: list[CryptoSigner] = []
    if change.root_keys:
        if not 1 <= change.root_threshold <= change.root_keys:
            raise ValueError(
                f"root threshold must be between 1 and the number of root keys"
                f" ({change.root_keys}), not {change.root_threshold}"
            )
        new_root_signers = [CryptoSigner.generate_ed25519() for _ in range(change.root_keys)]
        for keyid in list(root.signed.roles["root"].keyids):
            root.signed.revoke_key(keyid, "root")
        for signer in new_root_signers:
            root.signed.add_key(signer.public_key, "root")
        root.signed.roles["root"].threshold = change.root_threshold
    root.signed.version += 1
    root.signed.expires = now + timedelta(seconds=settings.root_expiry)
    return root, new_root_signers


def _new_targets(
    keys: KeySet, settings: TrustSettings, now: datetime, change: Change, online: Signer
) -> Metadata[Targets]:
    targets = Metadata[Targets].from_bytes(keys.targets_bytes)
    if change.online:
        kid = online.public_key.keyid
        bins = keys.bins
        targets.signed.delegations = Delegations(
            keys={kid: online.public_key},
            succinct_roles=SuccinctRoles([kid], 1, bins.bit_length, bins.name_prefix),
        )
    targets.signed.version += 1
    targets.signed.expires = now + timedelta(seconds=settings.targets_expiry)
    return targets


def prepare(
    keys: KeySet, settings: TrustSettings, now: datetime, secret: Path | None, change: Change
) -> int:
    """Step 1: sign the new root (and targets) and stage them with any new keys.

    Returns the new root version. Nothing the server reads changes.
    """
    data = keys.data
    if change.online and os.environ.get(ENV_ONLINE_KEY):
        raise KeyError_(
            f"the online key comes from ${ENV_ONLINE_KEY}; rotating it would write a key the"
            " server does not use. Unset it, rotate, then export the new online.pem"
        )
    if _rotating(data).exists():
        raise KeyError_(f"{_rotating(data)} exists: another change is unfinished")
    secret = secret if secret is not None else keys_dir(data)
    old_root_signers = root_signers(keys, secret)
    targets_key = targets_signer(keys, secret) if change.online or change.targets else None
    online: Signer = CryptoSigner.generate_ed25519() if change.online else keys.online
    root, new_root_signers = _new_root(keys, settings, now, change, online)
    # TUF's chain rule: root N's threshold signs N+1, and N+1 meets its own threshold.
    root_bytes = sign_offline(root, [*old_root_signers, *new_root_signers])
    for trusted, name in ((keys.root.signed, "the old"), (root.signed, "the new")):
        try:
            trusted.verify_delegate("root", root.signed_bytes, root.signatures)
        except UnsignedMetadataError as exc:
            raise KeyError_(
                f"the new root is not signed by {name} root's threshold: {exc}"
            ) from None
    targets = None
    if targets_key is not None:
        targets = _new_targets(keys, settings, now, change, online)
        targets_bytes = sign_offline(targets, [targets_key])

    staging = _rotating(data)
    staging.mkdir(mode=0o755)
    plan = {
        "root": root.signed.version,
        "targets": None if targets is None else targets.signed.version,
        "secret": str(secret.resolve()),
    }
    write_public(staging / "plan.json", json.dumps(plan).encode())
    if change.online:
        assert isinstance(online, CryptoSigner)
        replace_private(_next_online(data), online.private_bytes)
    for number, signer in enumerate(new_root_signers, 1):
        path = secret / f"root-next-{number}.pem"
        path.unlink(missing_ok=True)
        write_private(path, signer.private_bytes)
    fsync_dir(secret)
    if targets is not None:
        write_public(staging / f"{targets.signed.version}.targets.json", targets_bytes)
    write_public(staging / f"{root.signed.version}.root.json", root_bytes)
    fsync_dir(staging)
    return root.signed.version


def commit(data: Path) -> None:
    """Step 2, the commit point: the staged root becomes the latest root version."""
    plan = _plan(data)
    assert plan is not None, "nothing prepared"
    name = f"{plan['root']}.root.json"
    os.replace(_rotating(data) / name, trust_dir(data) / name)
    fsync_dir(trust_dir(data))
    fsync_dir(_rotating(data))


def _plan(data: Path) -> dict[str, object] | None:
    try:
        raw = (_rotating(data) / "plan.json").read_bytes()
    except FileNotFoundError:
        return None
    loaded: dict[str, object] = json.loads(raw)
    return loaded


def _committed(data: Path, plan: dict[str, object]) -> bool:
    return (trust_dir(data) / f"{plan['root']}.root.json").exists()


def finish(data: Path) -> None:
    """Step 3 (idempotent): move what a committed change staged into place."""
    plan = _plan(data)
    staging = _rotating(data)
    if plan is None:  # prepare stopped before its plan: nothing else was written
        if staging.exists():
            shutil.rmtree(staging)
        _next_online(data).unlink(missing_ok=True)
        return
    directory = trust_dir(data)
    if plan["targets"] is not None:
        name = f"{plan['targets']}.targets.json"
        if (staging / name).exists():
            os.replace(staging / name, directory / name)
            fsync_dir(directory)
    if _next_online(data).exists():
        os.replace(_next_online(data), keys_dir(data) / "online.pem")
        fsync_dir(keys_dir(data))
    secret = Path(str(plan["secret"]))
    if secret.is_dir():  # an offline key directory may be away: its files still work
        _retire_root_keys(data, secret, int(str(plan["root"])))
    (staging / "plan.json").unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(directory)


def _retire_root_keys(data: Path, secret: Path, version: int) -> None:
    """Delete root keys the committed root no longer names; new ones take their names."""
    staged = sorted(p for p in secret.iterdir() if _NEXT_ROOT_KEY.fullmatch(p.name))
    if not staged:
        return
    root = Metadata[Root].from_bytes((trust_dir(data) / f"{version}.root.json").read_bytes())
    named = set(root.signed.roles["root"].keyids)
    for path in secret.iterdir():
        if _ROOT_KEY.fullmatch(path.name):
            check_private(path)
            if load_signer(path).public_key.keyid not in named:
                path.unlink()  # revoked: a revoked root key should not outlive its root
    fsync_dir(secret)
    for path in staged:
        match = _NEXT_ROOT_KEY.fullmatch(path.name)
        assert match is not None
        os.replace(path, secret / f"root-{match.group(1)}.pem")
    fsync_dir(secret)


def _rollback(data: Path, plan: dict[str, object]) -> None:
    secret = Path(str(plan["secret"]))
    if secret.is_dir():
        for path in secret.iterdir():
            if _NEXT_ROOT_KEY.fullmatch(path.name):
                path.unlink()
        fsync_dir(secret)
    _next_online(data).unlink(missing_ok=True)
    shutil.rmtree(_rotating(data), ignore_errors=True)


def recover(data: Path) -> str | None:
    """Finish or roll back a change a crash interrupted (caller holds :func:`trust_lock`).

    Returns "rolled back", "finished" or None (nothing was pending).
    """
    if not _rotating(data).exists() and not _next_online(data).exists():
        return None
    plan = _plan(data)
    if plan is not None and not _committed(data, plan):
        _rollback(data, plan)
        return "rolled back"
    finish(data)
    return "finished" if plan is not None else "rolled back"


def change_keys(
    keys: KeySet, settings: TrustSettings, now: datetime, secret: Path | None, change: Change
) -> KeySet:
    """Prepare, commit and finish ``change`` under the trust lock; the new key set."""
    with trust_lock(keys.data):
        recover(keys.data)
        prepare(keys, settings, now, secret, change)
        commit(keys.data)
        finish(keys.data)
        return read_keys(keys.data)


def rotate_online_key(
    keys: KeySet, settings: TrustSettings, now: datetime, secret: Path | None = None
) -> KeySet:
    """Replace the online key: root N+1 (signed by root N's keys) and targets M+1 name it."""
    return change_keys(keys, settings, now, secret, Change(online=True))


def rotate_root_keys(
    keys: KeySet,
    settings: TrustSettings,
    now: datetime,
    secret: Path | None,
    count: int,
    threshold: int,
) -> KeySet:
    """Replace the root keys: root N+1 is signed by root N's threshold and by every new key."""
    return change_keys(
        keys, settings, now, secret, Change(root_keys=count, root_threshold=threshold)
    )


def resign(
    keys: KeySet, settings: TrustSettings, now: datetime, secret: Path | None = None
) -> KeySet:
    """Re-sign root and targets with the same keys, as new versions with fresh expiries."""
    return change_keys(keys, settings, now, secret, Change(targets=True))


def rebin(
    keys: KeySet, settings: TrustSettings, now: datetime, secret: Path | None, bits: int
) -> KeySet:
    """A new targets version delegating to ``2^bits`` hashed bins (same keys, same root).

    One file is the whole change: ``<data>/trust/<M+1>.targets.json``, written by an
    atomic rename (the latest version is what loads), so a crash leaves the old
    targets or the new, never a mix. Each index then re-cuts its bins in its next
    signing round, which sees its snapshot still naming the old bins
    (``IndexRepository.round``); until its timestamp moves, clients see the old,
    consistent snapshot.
    """
    if not 1 <= bits <= 32:
        raise ValueError(f"a bin bit length must be between 1 and 32, not {bits}")
    with trust_lock(keys.data):
        recover(keys.data)
        current = read_keys(keys.data)
        signer = targets_signer(current, secret if secret is not None else keys_dir(keys.data))
        targets = Metadata[Targets].from_bytes(current.targets_bytes)
        old = current.bins
        delegations = targets.signed.delegations
        assert delegations is not None
        delegations.succinct_roles = SuccinctRoles(old.keyids, old.threshold, bits, old.name_prefix)
        targets.signed.version += 1
        targets.signed.expires = now + timedelta(seconds=settings.targets_expiry)
        raw = sign_offline(targets, [signer])
        write_public(trust_dir(keys.data) / f"{targets.signed.version}.targets.json", raw)
        fsync_dir(trust_dir(keys.data))
        return read_keys(keys.data)
