"""Shared by the verify, attack, copy and independent-client tests: a signed tree
made by a live tilsit server, a way to serve a copy of it, run ``tilsit verify``,
and forge metadata with the server's own online key (what an attacker holding
that key, or a broken mirror, could publish)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from tests import postgres
from tests.builders import Dist, make_sdist, make_wheel
from tests.conftest import LiveServer
from tests.uploads import upload

INDEX = "main"
COMPACT = JSONSerializer(compact=True)


@dataclass
class Signed:
    """A live server's signed tree and the root a fresh client pins."""

    server: LiveServer
    dists: list[Dist]

    @property
    def data(self) -> Path:
        return self.server.settings.data

    @property
    def tree(self) -> Path:
        return self.server.settings.tree_dir

    @property
    def root(self) -> Path:
        return self.tree / INDEX / "tuf" / "1.root.json"

    def timestamp_version(self) -> int:
        raw = (self.tree / INDEX / "tuf" / "timestamp.json").read_bytes()
        return Metadata[Timestamp].from_bytes(raw).signed.version

    def upload(self, *dists: Dist) -> None:
        before = self.timestamp_version()
        with httpx.Client(base_url=self.server.url, timeout=60) as http:
            secret = self.server.token()
            for dist in dists:
                response = upload(http, dist, secret)
                assert response.status_code == 200, response.text
        self.dists += dists
        wait_for(lambda: self.timestamp_version() > before, "a new timestamp after the upload")


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def first_dists() -> list[Dist]:
    return [
        make_wheel("foo", "1.0"),
        make_sdist("foo", "1.0"),
        make_wheel("bar-baz", "0.1", requires_dist=["foo>=1"]),
    ]


def signed_tree(server: LiveServer) -> Signed:
    """Upload a few dists to ``server`` and wait until the tree is signed."""
    signed = Signed(server, [])
    timestamp = signed.tree / INDEX / "tuf" / "timestamp.json"
    wait_for(timestamp.is_file, "the index's first timestamp")
    signed.upload(*first_dists())
    return signed


def online_signer(data: Path) -> CryptoSigner:
    pem = (data / "keys" / "online.pem").read_bytes()
    return CryptoSigner(load_pem_private_key(pem, None))


def tuf_dir(tree: Path) -> Path:
    return tree / INDEX / "tuf"


def latest(tree: Path, role: str) -> Path:
    """The highest ``N.<role>.json`` of a tree."""
    found = sorted(tuf_dir(tree).glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))
    return found[-1]


def hashed_file(tree: Path, filename: str) -> Path:
    """The ``<sha256>.<filename>`` link clients fetch for a distribution."""
    return next((tree / INDEX / "packages").rglob(f"*.{filename}"))


def hashed_page(tree: Path, project: str) -> Path:
    digest = hashlib.sha256((tree / INDEX / "simple" / project / "index.html").read_bytes())
    return tree / INDEX / "simple" / project / f"{digest.hexdigest()}.index.html"


def flip_byte(path: Path, offset: int = -1) -> None:
    """Change one byte in place (every hard link of the inode sees it)."""
    with path.open("r+b") as fh:
        fh.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 1]))


def sign_write(md: Metadata, signer: CryptoSigner, path: Path) -> bytes:  # type: ignore[type-arg]
    md.signatures.clear()
    md.sign(signer, append=True)
    data = md.to_bytes(COMPACT)
    path.write_bytes(data)
    return data


def forge_bin(
    tree: Path, signer: CryptoSigner, target: str, change: Callable[[Targets], None]
) -> None:
    """Publish a new version of the bin holding ``target``, then snapshot and
    timestamp, all signed with the online key, as tilsit itself would."""
    meta = tuf_dir(tree)
    top = Metadata[Targets].from_bytes(latest(tree, "targets").read_bytes()).signed
    assert top.delegations is not None and top.delegations.succinct_roles is not None
    role = top.delegations.succinct_roles.get_role_for_target(target)
    binmd = Metadata[Targets].from_bytes(latest(tree, role).read_bytes())
    change(binmd.signed)
    binmd.signed.version += 1
    sign_write(binmd, signer, meta / f"{binmd.signed.version}.{role}.json")
    snap = Metadata[Snapshot].from_bytes(latest(tree, "snapshot").read_bytes())
    snap.signed.meta[f"{role}.json"] = MetaFile(binmd.signed.version)
    snap.signed.version += 1
    data = sign_write(snap, signer, meta / f"{snap.signed.version}.snapshot.json")
    forge_timestamp(tree, signer, snapshot=(snap.signed.version, data))


def forge_timestamp(
    tree: Path,
    signer: CryptoSigner,
    *,
    snapshot: tuple[int, bytes] | None = None,
    change: Callable[[Timestamp], None] | None = None,
) -> None:
    path = tuf_dir(tree) / "timestamp.json"
    ts = Metadata[Timestamp].from_bytes(path.read_bytes())
    ts.signed.version += 1
    if snapshot is not None:
        version, data = snapshot
        old = ts.signed.snapshot_meta
        ts.signed.snapshot_meta = MetaFile(
            version,
            len(data) if old.length is not None else None,
            {"sha256": hashlib.sha256(data).hexdigest()} if old.hashes else None,
        )
    if change is not None:
        change(ts.signed)
    sign_write(ts, signer, path)


def copy_tree(tree: Path, to: Path, *, rsync: bool = False) -> Path:
    """A copy of the whole tree made the way operators make one."""
    if rsync:
        # timestamp.json last, as a live copy must: everything else first.
        to.mkdir(parents=True)
        common = ["rsync", "-aH", "--exclude", f"{INDEX}/tuf/timestamp.json"]
        subprocess.run([*common, f"{tree}/", f"{to}/"], check=True)
        subprocess.run(["rsync", "-aH", f"{tree}/", f"{to}/"], check=True)
    else:
        subprocess.run(["cp", "-a", str(tree), str(to)], check=True)
    return to


@contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """``python -m http.server`` over ``directory`` on a free local port."""
    port = postgres.free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "-d",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url + "/", timeout=2).status_code == 200, "http.server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def run_verify(
    *args: str,
    faketime: str | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``tilsit verify …`` in a subprocess (optionally under ``faketime``)."""
    command = [sys.executable, "-m", "tilsit", "verify", *args]
    if faketime is not None:
        assert shutil.which("faketime")
        command = ["faketime", "-f", faketime, *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def faults(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The fault names a run printed (``FAULT <name>: …`` lines)."""
    return [
        line.removeprefix("FAULT ").split(":")[0]
        for line in result.stdout.splitlines()
        if line.startswith("FAULT ")
    ]
