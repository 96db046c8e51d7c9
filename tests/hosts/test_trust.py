"""Every host serves the same signed TUF metadata, and it verifies against the origin's root.

The hosts sign one at a time, each round starting from the newest metadata stored in
the database (tilsit.trust.shared), so a client may move between hosts: what one host
serves is never older than what another served it before (no rollback).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.builders import make_wheel
from tests.hosts.conftest import Cluster, served, wait_for
from tests.trust.signed import run_verify
from tests.uploads import upload


def test_every_host_serves_the_same_signed_metadata_and_verifies(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    token = a.token()
    with httpx.Client(base_url=a.url, timeout=30) as http:
        for version in ("1.0", "1.1"):
            assert upload(http, make_wheel("signed-thing", version), token).status_code == 200
    wait_for(lambda: served(f"{b.url}/simple/signed-thing/"), timeout=10)
    root = a.settings.tree_dir / "main" / "tuf" / "1.root.json"
    assert root.read_bytes() == (b.settings.tree_dir / "main" / "tuf" / "1.root.json").read_bytes()

    def same_timestamp() -> bool:
        served_a = httpx.get(f"{a.url}/main/tuf/timestamp.json", timeout=10).content
        return served_a == httpx.get(f"{b.url}/main/tuf/timestamp.json", timeout=10).content

    wait_for(same_timestamp, timeout=10)
    stamp = json.loads(httpx.get(f"{a.url}/main/tuf/timestamp.json").content)
    version = stamp["signed"]["meta"]["snapshot.json"]["version"]
    snapshots = [
        httpx.get(f"{host.url}/main/tuf/{version}.snapshot.json", timeout=10) for host in (a, b)
    ]
    assert snapshots[0].status_code == 200
    assert snapshots[0].content == snapshots[1].content
    # One client state for both hosts: what B serves is not older than what A served.
    state = tmp_path / "verify-state"
    listed = []
    for host in (a, b, a):
        result = run_verify(f"{host.url}/main/", "--root", str(root), "--state", str(state))
        assert result.returncode == 0, (host.url, result.stdout + result.stderr)
        assert result.stdout.startswith(f"OK: {host.url}/main/"), result.stdout
        found = re.search(r"(\d+) targets listed, (\d+) checked", result.stdout)
        assert found is not None and found[1] == found[2], result.stdout
        listed.append(int(found[1]))
    # The same targets on both hosts (the two wheels, their metadata and the pages).
    assert listed[0] == listed[1] == listed[2] >= 4, listed
