"""Re-cutting the hashed bins as an index grows (tilsit.trust.bincount).

The bin count follows the target count: a new targets.json delegates to the new
bins, then every index is re-cut in one round, timestamp last. ``tilsit verify``
and python-tuf's ngclient holding metadata from before the re-cut follow it; a
crash in the middle leaves the old consistent state; the sweep afterwards keeps
every link the new bins list.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from tests.builders import make_wheel
from tests.conftest import LiveServer, run_cli, start_server, stop
from tests.trust.signed import run_verify
from tests.trust.tufclient import fetch, updater
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.store.tree import Tree
from tilsit.trust.bincount import grown_bits, ideal_bits
from tilsit.trust.fresh import sweep
from tilsit.trust.keys import TrustSettings, init_keys
from tilsit.trust.layout import file_target
from tilsit.trust.repository import Batch, IndexRepository
from tilsit.trust.rotation import rebin
from tilsit.trust.settings import utcnow


def _snapshot(tree: Path, index: str = "main") -> Metadata[Snapshot]:
    tuf = tree / index / "tuf"
    timestamp = Metadata[Timestamp].from_bytes((tuf / "timestamp.json").read_bytes())
    raw = (tuf / f"{timestamp.signed.snapshot_meta.version}.snapshot.json").read_bytes()
    return Metadata[Snapshot].from_bytes(raw)


def _bins(tree: Path, index: str = "main") -> int:
    """The bins the current snapshot's targets.json delegates to."""
    version = _snapshot(tree, index).signed.meta["targets.json"].version
    raw = (tree / index / "tuf" / f"{version}.targets.json").read_bytes()
    delegations = Metadata[Targets].from_bytes(raw).signed.delegations
    assert delegations is not None and delegations.succinct_roles is not None
    return int(delegations.succinct_roles.number_of_bins)


def _upload(server: LiveServer, *names: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        secret = server.token()
        for name in names:
            assert upload(http, make_wheel(name, "1.0"), secret).status_code == 200


def _verify(server: LiveServer, state: Path) -> dict[str, object]:
    root = server.settings.tree_dir / "main" / "tuf" / "1.root.json"
    result = run_verify(
        server.url, "--index", "main", "--root", str(root), "--state", str(state), "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_bin_count_follows_the_square_root_with_hysteresis() -> None:
    assert ideal_bits(400_000) == 12  # bench/tuf_bins.py: the least refresh bytes
    assert ideal_bits(400) == 7
    assert grown_bits(10, 60_000) is None  # not a whole bit past 10 yet
    assert grown_bits(10, 70_000) == 11
    assert grown_bits(12, 400_000) is None
    assert grown_bits(12, 100) is None  # never shrinks by itself
    # Never to longer bin names by itself: 12 bits is 4,096 bins, 13 would list them all
    # (bins-000 ...) beside bins-0000 ... in every snapshot.
    assert grown_bits(12, 4_000_000) is None
    assert grown_bits(10, 4_000_000) == 12
    assert grown_bits(5, 100) == 6


@pytest.fixture
def small_bins(settings: Settings, tmp_path: Path) -> LiveServer:
    """A server whose keys were made with 32 bins (tuf_bin_bits=5)."""
    server = start_server(settings, tmp_path / "server.log", env={"TILSIT_TUF_BIN_BITS": "5"})
    yield server  # type: ignore[misc]
    stop(server)


def test_rebin_command_keeps_verify_and_returning_clients_passing(
    small_bins: LiveServer, tmp_path: Path
) -> None:
    server = small_bins
    tree = server.settings.tree_dir
    _upload(server, "cut_a", "cut_b", "cut_c")
    assert _bins(tree) == 32
    state = tmp_path / "verify-state"
    assert _verify(server, state)["bins"] == 32
    root = (tree / "main" / "tuf" / "1.root.json").read_bytes()
    client = updater(server.url, "main", root, tmp_path / "client")
    client.refresh()
    assert fetch(client, "simple/cut-a/index.html")

    done = run_cli(server.settings, "keys", "rebin", "--bits", "7")
    assert "main: re-cut into 128 bins" in done.stdout, done.stdout
    assert _bins(tree) == 128
    # The same verify state and the same ngclient state, from before the re-cut.
    report = _verify(server, state)
    assert report["bins"] == 128 and report["faults"] == []
    client = updater(server.url, "main", root, tmp_path / "client")
    client.refresh()
    assert fetch(client, "simple/cut-b/index.v1.json")
    # The running server signs in the new cut from its next upload.
    _upload(server, "cut_d")
    assert _bins(tree) == 128
    report = _verify(server, state)
    assert report["faults"] == [] and report["bins"] == 128
    client = updater(server.url, "main", root, tmp_path / "client")
    client.refresh()
    assert b"cut-d" in fetch(client, "simple/index.v1.json")
    # Without --bits: the best count for the largest index, down as well as up. The
    # snapshot still lists the names the smaller cut lacks (clients refuse one that
    # drops a name), at the versions they had.
    listed = _snapshot(tree).signed.meta
    assert report["targets_listed"] == 18
    down = run_cli(server.settings, "keys", "rebin")
    assert "main: re-cut into 32 bins" in down.stdout, down.stdout
    assert _bins(tree) == 32
    now_listed = _snapshot(tree).signed.meta
    assert set(now_listed) == set(listed)
    assert now_listed["bins-7f.json"].version == listed["bins-7f.json"].version
    assert _verify(server, state)["bins"] == 32
    client = updater(server.url, "main", root, tmp_path / "client")
    client.refresh()
    assert fetch(client, "simple/cut-c/index.html")
    again = run_cli(server.settings, "keys", "rebin")
    assert "already 32 bins" in again.stdout


def test_the_freshness_pass_rebins_at_the_threshold_only(
    small_bins: LiveServer, tmp_path: Path
) -> None:
    """32 bins (5 bits) serve up to 63 targets; at 64 (a whole bit more: 8 * sqrt(64)
    = 2^6) the pass re-cuts to 64 bins, and not again before 256 targets."""
    server = small_bins
    tree = server.settings.tree_dir
    state = tmp_path / "verify-state"
    # Each project: 2 pages, a wheel and its .metadata; and the 2 list pages.
    _upload(server, *(f"grow_{n}" for n in range(15)))
    run_cli(server.settings, "tuf", "refresh")
    assert _bins(tree) == 32
    assert _verify(server, state)["targets_listed"] == 62
    _upload(server, "grow_15")
    out = run_cli(server.settings, "tuf", "refresh").stdout
    assert "main: re-cut into 64 bins" in out, out
    assert _bins(tree) == 64
    assert _verify(server, state)["faults"] == []
    _upload(server, "grow_16", "grow_17")
    out = run_cli(server.settings, "tuf", "refresh").stdout
    assert "re-cut" not in out and _bins(tree) == 64
    assert _verify(server, state)["faults"] == []


def test_no_automatic_rebin_with_the_targets_key_offline(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TILSIT_TUF_BIN_BITS", "5")
    offline = tmp_path / "offline"
    run_cli(settings, "keys", "init", "--offline", str(offline))
    server = start_server(settings, tmp_path / "server.log")
    try:
        tree = server.settings.tree_dir
        _upload(server, *(f"off_{n}" for n in range(16)))
        out = run_cli(server.settings, "tuf", "refresh").stdout
        assert "targets key is not online" in out and "keys rebin --keys" in out, out
        assert _bins(tree) == 32
        refused = run_cli(server.settings, "keys", "rebin", "--bits", "6", check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "targets.pem" in refused.stderr + refused.stdout
        assert _bins(tree) == 32
        run_cli(server.settings, "keys", "rebin", "--bits", "6", "--keys", str(offline))
        assert _bins(tree) == 64
        assert _verify(server, tmp_path / "state")["faults"] == []
    finally:
        stop(server)


def _repository(tmp_path: Path, bits: int) -> tuple[Tree, IndexRepository, TrustSettings]:
    trust = TrustSettings(bin_bits=bits)
    keys = init_keys(tmp_path / "data", trust, utcnow())
    tree = Tree(tmp_path / "tree", tmp_path / "tmp")
    return tree, IndexRepository(tree, "main", keys, trust), trust


def _fill(tree: Tree, repo: IndexRepository, count: int, tag: str = "") -> None:
    """``count`` files placed under their hashed names, signed in one round."""
    batch = Batch()
    for n in range(count):
        data = f"file {tag}{n}".encode()
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        target = file_target(sha, f"p{n}-1.0{tag}.tar.gz")
        tree.write(f"main/{target}", data)
        tree.link(repo.hashed_path(target, sha), tree.path(f"main/{target}"))
        batch.upsert(target, sha, len(data))
    repo.round(utcnow(), batch.changes)


def _verify_tree(tree: Tree) -> dict[str, object]:
    result = run_verify(
        str(tree.root), "--index", "main", "--root", str(tree.path("main/tuf/1.root.json")),
        "--fresh", "--json",
    )  # fmt: skip
    report: dict[str, object] = json.loads(result.stdout)
    assert result.returncode == 0 and report["faults"] == [], result.stdout + result.stderr
    return report


def test_a_crash_during_the_recut_leaves_the_old_snapshot_then_the_next_round_finishes(
    tmp_path: Path,
) -> None:
    tree, repo, trust = _repository(tmp_path, 4)
    _fill(tree, repo, 40)
    before = (tree.path("main/tuf/timestamp.json")).read_bytes()
    keys = rebin(repo.keys, trust, utcnow(), None, 6)
    crashing = IndexRepository(tree, "main", keys, trust)
    real_write = tree.write

    def crash_at_the_timestamp(relative: str, data: bytes) -> None:
        if relative.endswith("timestamp.json"):
            raise OSError("power cut")
        real_write(relative, data)

    tree.write = crash_at_the_timestamp  # type: ignore[method-assign]
    with pytest.raises(OSError, match="power cut"):
        crashing.round(utcnow())
    tree.write = real_write  # type: ignore[method-assign]
    # New bins and a new snapshot are on disk, but the timestamp names the old ones.
    assert tree.path("main/tuf/timestamp.json").read_bytes() == before
    assert _bins(tree.root) == 16
    assert _verify_tree(tree)["bins"] == 16
    # The next round (a restarted server) sees the snapshot naming the old cut.
    IndexRepository(tree, "main", keys, trust).round(utcnow())
    assert _bins(tree.root) == 64
    report = _verify_tree(tree)
    assert report["bins"] == 64 and report["targets_listed"] == 40


def test_the_sweep_after_a_recut_keeps_every_link_the_new_bins_list(tmp_path: Path) -> None:
    """Old versions of a bin name list paths that a re-cut moved to other bins: their
    links are live, and the sweep must leave them."""
    tree, repo, trust = _repository(tmp_path, 5)
    _fill(tree, repo, 40)
    keys = rebin(repo.keys, trust, utcnow(), None, 7)  # bins-00 … bins-7f
    repo = IndexRepository(tree, "main", keys, trust)
    repo.round(utcnow())
    _fill(tree, repo, 3, tag="later")
    later = utcnow() + timedelta(hours=3)
    gone = sweep(repo, later, 3600, keep=1)
    assert gone.bins  # the old cut's versions went
    assert _verify_tree(tree)["targets_listed"] == 43
    links = [p for p in Path(tree.path("main/packages")).rglob("*") if p.is_file()]
    assert len([p for p in links if len(p.name) > 65 and p.name[64] == "."]) == 43
    assert os.path.exists(tree.path("main/tuf/1.root.json"))
