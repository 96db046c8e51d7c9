"""Re-signing before expiry (with an injected clock) and the grace-period sweep."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from tuf.api.metadata import Metadata, Snapshot, Timestamp

from tests.builders import make_wheel
from tests.conftest import AppClient, LiveServer, need
from tests.uploads import upload
from tilsit.instance import Instance
from tilsit.trust.fresh import refresh, sweep
from tilsit.trust.layout import file_target
from tilsit.trust.settings import utcnow

# A client run in a child process, so faketime can move its clock (ngclient takes
# its reference time from the system clock).
_CLIENT = """
import sys
from tuf.ngclient import Updater
base, root, state, path = sys.argv[1:5]
import pathlib
(pathlib.Path(state) / "t").mkdir(parents=True, exist_ok=True)
client = Updater(state, base + "/main/tuf/", state + "/t", base + "/main/",
                 bootstrap=pathlib.Path(root).read_bytes())
try:
    client.refresh()
    info = client.get_targetinfo(path)
    assert info is not None, path
    client.download_target(info)
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
print("ok")
"""


def _client_at(
    server: LiveServer, offset: str, state: Path, path: str
) -> subprocess.CompletedProcess[str]:
    root = server.settings.tree_dir / "main" / "tuf" / "1.root.json"
    return subprocess.run(
        [
            "faketime",
            "-f",
            offset,
            sys.executable,
            "-c",
            _CLIENT,
            server.url,
            str(root),
            str(state),
            path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _timestamp(instance: Instance) -> Metadata[Timestamp]:
    raw = (instance.settings.tree_dir / "main" / "tuf" / "timestamp.json").read_bytes()
    return Metadata[Timestamp].from_bytes(raw)


def test_refresh_resigns_only_what_is_past_half_its_life(
    instance: Instance, client: AppClient, token: str
) -> None:
    assert upload(client, make_wheel("fresh", "1.0"), token).status_code == 200
    repo = instance.signing.repo("main")
    now = utcnow()
    version = _timestamp(instance).signed.version
    assert not refresh(repo, now + timedelta(hours=1))
    assert _timestamp(instance).signed.version == version
    later = now + timedelta(hours=13)
    done = refresh(repo, later)
    assert done.timestamp and done.snapshot
    assert len(done.bins) == len(list(instance.signing.keys.bins.get_roles()))
    ts = _timestamp(instance)
    # Re-signed a step at a time: each step is a round of its own.
    assert ts.signed.version > version
    assert ts.signed.expires == later + timedelta(days=1)
    # Done once: the same moment again has nothing due.
    assert not refresh(repo, later)


def test_timestamp_alone_when_only_it_is_due(instance: Instance) -> None:
    repo = instance.signing.repo("main")
    now = utcnow()
    snapshot = repo.snapshot().signed.version
    settings = instance.signing.settings
    # A shorter-lived timestamp comes due first; nothing else moves.
    from dataclasses import replace

    repo.settings = replace(settings, timestamp_expiry=3600)
    repo.round(now, timestamp_due=True)
    done = refresh(repo, now + timedelta(minutes=31))
    assert done.timestamp and not done.snapshot and not done.bins
    assert repo.snapshot().signed.version == snapshot


def test_client_after_a_day_verifies_only_if_refreshed(
    live_server: LiveServer, tmp_path: Path
) -> None:
    need(shutil.which("faketime") is not None, "faketime is not installed")
    wheel = make_wheel("day_old", "1.0")
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        assert upload(http, wheel, live_server.token()).status_code == 200
    path = file_target(wheel.sha256, wheel.filename)
    stale = _client_at(live_server, "+25h", tmp_path / "a", path)
    assert stale.returncode == 1
    assert "ExpiredMetadataError" in stale.stdout
    # The server's freshness pass at +13 h (driven here with that clock) re-signs ...
    from tilsit.instance import open_instance

    instance = open_instance(live_server.settings)
    try:
        with instance.renderer.locked():
            done = refresh(instance.signing.repo("main"), utcnow() + timedelta(hours=13))
        assert done.timestamp
    finally:
        instance.close()
    # ... so a client at +25 h (12 h after that pass) still verifies.
    fresh = _client_at(live_server, "+25h", tmp_path / "b", path)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr


def test_sweep_keeps_the_grace_window_and_every_root(
    instance: Instance, client: AppClient, token: str
) -> None:
    tree = instance.settings.tree_dir
    tuf = tree / "main" / "tuf"
    wheels = [make_wheel("swept", f"1.{n}") for n in range(3)]
    hashed_pages = []
    for wheel in wheels:
        assert upload(client, wheel, token).status_code == 200
        hashed_pages.append(
            {p.name for p in (tree / "main/simple/swept").iterdir() if len(p.name) > 70}
        )
    from tests.conftest import run_cli

    run_cli(instance.settings, "delete", "file", wheels[0].filename)
    repo = instance.signing.repo("main")
    current = repo.timestamp().signed.snapshot_meta.version
    snapshots = sorted(int(p.name.split(".")[0]) for p in tuf.glob("*.snapshot.json"))
    assert len(snapshots) > 3
    now = utcnow()
    # Within the grace window nothing goes.
    kept = sweep(repo, now, repo.settings.grace)
    assert not kept.snapshots and not kept.bins and not kept.links
    # Two hours on, only what the current snapshot lists stays.
    swept = sweep(repo, now + timedelta(hours=2), repo.settings.grace)
    assert swept.snapshots == [v for v in snapshots if v < current]
    assert sorted(int(p.name.split(".")[0]) for p in tuf.glob("*.snapshot.json")) == [current]
    assert (tuf / "1.root.json").is_file() and (tuf / "root.json").is_file()
    assert list(tuf.glob("*.targets.json"))
    deleted = wheels[0]
    gone = tree / "main" / file_target(deleted.sha256, deleted.filename)
    assert not gone.with_name(f"{deleted.sha256}.{deleted.filename}").exists()
    kept_wheel = wheels[1]
    link = tree / "main" / file_target(kept_wheel.sha256, kept_wheel.filename)
    assert link.with_name(f"{kept_wheel.sha256}.{kept_wheel.filename}").is_file()
    # Old page versions are gone, the current ones stay.
    now_pages = {p.name for p in (tree / "main/simple/swept").iterdir() if len(p.name) > 70}
    assert len(now_pages) == 2
    assert hashed_pages[0].isdisjoint(now_pages)
    # Every bin the current snapshot lists is on disk, and a client still verifies.
    snap = Metadata[Snapshot].from_bytes((tuf / f"{current}.snapshot.json").read_bytes())
    for name, meta in snap.signed.meta.items():
        assert (tuf / f"{meta.version}.{name}").is_file(), name
