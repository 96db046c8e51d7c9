"""A python-tuf ngclient pointed at an index of a live tilsit server (tests of the signer)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

from tilsit.trust.layout import file_target


def updater(base: str, index: str, root: bytes, state: Path) -> Updater:
    """A fresh Updater for ``<base>/<index>/`` trusting ``root`` (or what ``state`` holds)."""
    metadata = state / "metadata"
    targets = state / "targets"
    metadata.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    trusted = root if not (metadata / "root.json").exists() else None
    return Updater(
        str(metadata),
        f"{base}/{index}/tuf/",
        str(targets),
        f"{base}/{index}/",
        bootstrap=trusted,
    )


def fetch(client: Updater, path: str) -> bytes:
    """Download and verify one target; fails the test if it is not signed."""
    info = client.get_targetinfo(path)
    assert info is not None, f"{path} is not a signed target"
    saved = client.download_target(info)
    data = Path(saved).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info.hashes["sha256"]
    return data


def info(client: Updater, path: str) -> TargetFile | None:
    return client.get_targetinfo(path)


def wheel_target(sha256: str, filename: str) -> str:
    return file_target(sha256, filename)
