"""The server's TUF keys and the metadata only they can sign (root and targets).

One key set per server, shared by every index:

- ``<data>/keys/`` (0700): ``root-1.pem`` … ``root-N.pem``, ``targets.pem`` and
  ``online.pem`` (PEM PKCS8, 0600). Root and targets keys may live elsewhere
  (``tilsit keys init --offline DIR``); the server then holds only ``online.pem``.
  ``TILSIT_TUF_ONLINE_KEY`` (PEM text) replaces ``online.pem``.
- ``<data>/trust/``: the signed root chain ``N.root.json`` and the latest
  ``N.targets.json``. Neither names an index, so every index carries the same bytes
  and a new index needs no offline key. ``published/<index>.json`` holds the highest
  versions each index published (:mod:`tilsit.trust.published`); ``rotating/`` a root
  or key change in progress (:mod:`tilsit.trust.rotation`).

The online key signs timestamp, snapshot and the hashed bins.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import Delegations, Metadata, Root, SuccinctRoles, Targets
from tuf.api.serialization.json import JSONSerializer

from tilsit.operator import OperatorError

__all__ = [
    "ENV_ONLINE_KEY",
    "KeyError_",
    "KeySet",
    "KeysExist",
    "TrustSettings",
    "check_private",
    "init_keys",
    "keys_dir",
    "load_signer",
    "read_keys",
    "replace_private",
    "root_signers",
    "sign_offline",
    "targets_signer",
    "trust_dir",
    "write_private",
    "write_public",
]

ENV_ONLINE_KEY = "TILSIT_TUF_ONLINE_KEY"
SERIALIZER = JSONSerializer(compact=True)
_ROOT_FILE = re.compile(r"(\d+)\.root\.json")
_TARGETS_FILE = re.compile(r"(\d+)\.targets\.json")


class KeyError_(OperatorError):
    """A key file that is missing, unsafe (readable by others) or not the one root names."""


class KeysExist(KeyError_):
    """``keys init`` found keys already: it never overwrites them."""


@dataclass(frozen=True)
class TrustSettings:
    """The settings signing needs (kept apart so tests and benchmarks can build one)."""

    bin_bits: int = 10
    timestamp_expiry: int = 86400
    snapshot_expiry: int = 86400
    bins_expiry: int = 86400
    targets_expiry: int = 365 * 86400
    root_expiry: int = 365 * 86400
    grace: int = 3600
    keep_versions: int = 16


def keys_dir(data: Path) -> Path:
    return data / "keys"


def trust_dir(data: Path) -> Path:
    return data / "trust"


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def check_private(path: Path) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise KeyError_(
            f"{path} is readable or writable by group or others (mode {mode:04o});"
            f" a key must be private: chmod 600 {path}"
        )


def write_private(path: Path, data: bytes) -> None:
    """Write a new key file, 0600 from its creation (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_private(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.new")
    staging.unlink(missing_ok=True)
    write_private(staging, data)
    os.replace(staging, path)


def write_public(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.new")
    staging.write_bytes(data)
    with open(staging, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(staging, path)


def _signer_from_pem(pem: bytes, where: str) -> CryptoSigner:
    try:
        return CryptoSigner(load_pem_private_key(pem, None))
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"{where} is not an unencrypted PEM private key: {exc}") from None


def load_signer(path: Path) -> CryptoSigner:
    if not path.is_file():
        raise KeyError_(f"key file {path} is missing")
    check_private(path)
    return _signer_from_pem(path.read_bytes(), str(path))


def sign_offline(md: Metadata[Root] | Metadata[Targets], signers: Iterable[Signer]) -> bytes:
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes(SERIALIZER)


@dataclass
class KeySet:
    """The trusted metadata plus the online signer, as the server loads them."""

    data: Path
    roots: list[bytes]  # every root version, 1.root.json first
    root: Metadata[Root]  # the latest
    targets_bytes: bytes
    targets: Metadata[Targets]
    online: Signer

    @property
    def bins(self) -> SuccinctRoles:
        delegations = self.targets.signed.delegations
        assert delegations is not None and delegations.succinct_roles is not None
        return delegations.succinct_roles


def _root_versions(directory: Path) -> list[int]:
    found = []
    for entry in directory.iterdir() if directory.is_dir() else []:
        match = _ROOT_FILE.fullmatch(entry.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def _latest_targets(directory: Path) -> Path:
    best: tuple[int, Path] | None = None
    for entry in directory.iterdir():
        match = _TARGETS_FILE.fullmatch(entry.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), entry)
    if best is None:
        raise KeyError_(f"no N.targets.json in {directory}")
    return best[1]


def _online_keyid(root: Root) -> str:
    return root.roles["timestamp"].keyids[0]


def read_keys(data: Path) -> KeySet:
    """Read the trusted metadata and the online key; refuse unsafe or mismatched keys.

    The caller holds the trust lock with no key change pending: use
    :func:`tilsit.trust.keyring.load_keys`, which sees to both.
    """
    directory = trust_dir(data)
    versions = _root_versions(directory)
    if not versions or versions[0] != 1:
        raise KeyError_(f"no 1.root.json in {directory}: run `tilsit keys init`")
    roots = [(directory / f"{v}.root.json").read_bytes() for v in versions]
    root = Metadata[Root].from_bytes(roots[-1])
    targets_bytes = _latest_targets(directory).read_bytes()
    targets = Metadata[Targets].from_bytes(targets_bytes)
    pem = os.environ.get(ENV_ONLINE_KEY)
    if pem:
        online = _signer_from_pem(pem.encode(), f"${ENV_ONLINE_KEY}")
        where = f"${ENV_ONLINE_KEY}"
    else:
        home = keys_dir(data)
        if home.is_dir():
            check_private(home)
        online = load_signer(home / "online.pem")
        where = str(home / "online.pem")
    if online.public_key.keyid != _online_keyid(root.signed):
        raise KeyError_(
            f"the online key in {where} (keyid {online.public_key.keyid[:16]}…) is not the"
            f" one root version {root.signed.version} names for timestamp and snapshot"
        )
    return KeySet(data, roots, root, targets_bytes, targets, online)


def _has_keys(data: Path) -> bool:
    home = keys_dir(data)
    if home.is_dir() and any(p.suffix == ".pem" for p in home.iterdir()):
        return True
    return (trust_dir(data) / "1.root.json").exists()


def init_keys(
    data: Path,
    settings: TrustSettings,
    now: datetime,
    *,
    root_keys: int = 1,
    root_threshold: int = 1,
    offline: Path | None = None,
) -> KeySet:
    """Generate root, targets and online keys and sign root v1 and targets v1."""
    if root_keys < 1 or not 1 <= root_threshold <= root_keys:
        raise ValueError(
            f"root threshold must be between 1 and the number of root keys ({root_keys}),"
            f" not {root_threshold}"
        )
    if _has_keys(data):
        raise KeysExist(
            f"keys already exist in {keys_dir(data)} (or {trust_dir(data)}); tilsit keys init"
            " never overwrites them (use `tilsit keys rotate`)"
        )
    pem = os.environ.get(ENV_ONLINE_KEY)
    online = (
        _signer_from_pem(pem.encode(), f"${ENV_ONLINE_KEY}")
        if pem
        else CryptoSigner.generate_ed25519()
    )
    new_root_keys = [CryptoSigner.generate_ed25519() for _ in range(root_keys)]
    targets_key = CryptoSigner.generate_ed25519()

    root = Metadata(Root(expires=now + timedelta(seconds=settings.root_expiry)))
    for signer in new_root_keys:
        root.signed.add_key(signer.public_key, "root")
    root.signed.roles["root"].threshold = root_threshold
    root.signed.add_key(targets_key.public_key, "targets")
    for role in ("snapshot", "timestamp"):
        root.signed.add_key(online.public_key, role)
    root_bytes = sign_offline(root, new_root_keys)

    targets = Metadata(Targets(expires=now + timedelta(seconds=settings.targets_expiry)))
    kid = online.public_key.keyid
    targets.signed.delegations = Delegations(
        keys={kid: online.public_key},
        succinct_roles=SuccinctRoles([kid], 1, settings.bin_bits, "bins"),
    )
    targets_bytes = sign_offline(targets, [targets_key])

    home = keys_dir(data)
    _private_dir(home)
    secret = offline if offline is not None else home
    if offline is not None:
        _private_dir(offline)
        for existing in ("targets.pem", "root-1.pem"):
            if (offline / existing).exists():
                raise KeysExist(f"{offline / existing} exists; not overwriting it")
    for number, signer in enumerate(new_root_keys, 1):
        write_private(secret / f"root-{number}.pem", signer.private_bytes)
    write_private(secret / "targets.pem", targets_key.private_bytes)
    if not pem:
        write_private(home / "online.pem", online.private_bytes)
    directory = trust_dir(data)
    directory.mkdir(parents=True, exist_ok=True)
    write_public(directory / "1.targets.json", targets_bytes)
    # Root last: its presence is what says "keys exist".
    write_public(directory / "1.root.json", root_bytes)
    # A new key set: no change of keys can be pending on it.
    return read_keys(data)


def root_signers(keys: KeySet, secret: Path) -> list[Signer]:
    root = keys.root.signed
    signers: list[Signer] = []
    for path in sorted(secret.glob("root-*.pem")):
        signer = load_signer(path)
        if signer.public_key.keyid in root.roles["root"].keyids:
            signers.append(signer)
    if len(signers) < root.roles["root"].threshold:
        raise KeyError_(
            f"{secret} holds {len(signers)} of the root keys; root version"
            f" {root.version} needs {root.roles['root'].threshold} to sign its successor"
        )
    return signers


def targets_signer(keys: KeySet, secret: Path) -> Signer:
    signer = load_signer(secret / "targets.pem")
    if signer.public_key.keyid not in keys.root.signed.roles["targets"].keyids:
        raise KeyError_(f"{secret / 'targets.pem'} is not the key root names for targets")
    return signer
