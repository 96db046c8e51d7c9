"""Every host's tree verifies end to end against the origin's root (the first host's keys).

Each host signs its own tree after its own render, with the keys copied from the first
host (docs/scale-out-hosts.md says what is still per host: versions and bytes differ).
"""

from __future__ import annotations

import re

import httpx

from tests.builders import make_wheel
from tests.hosts.conftest import Cluster, served, wait_for
from tests.trust.signed import run_verify
from tests.uploads import upload


def test_verify_against_the_origin_root_passes_on_every_host(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    token = a.token()
    with httpx.Client(base_url=a.url, timeout=30) as http:
        for version in ("1.0", "1.1"):
            assert upload(http, make_wheel("signed-thing", version), token).status_code == 200
    wait_for(lambda: served(f"{b.url}/simple/signed-thing/"), timeout=10)
    root = a.settings.tree_dir / "main" / "tuf" / "1.root.json"
    assert root.read_bytes() == (b.settings.tree_dir / "main" / "tuf" / "1.root.json").read_bytes()
    listed = []
    for host in (a, b):
        result = run_verify(f"{host.url}/main/", "--root", str(root))
        assert result.returncode == 0, (host.url, result.stdout + result.stderr)
        assert result.stdout.startswith(f"OK: {host.url}/main/"), result.stdout
        found = re.search(r"(\d+) targets listed, (\d+) checked", result.stdout)
        assert found is not None and found[1] == found[2], result.stdout
        listed.append(int(found[1]))
    # The same targets on both hosts (the two wheels, their metadata and the pages).
    assert listed[0] == listed[1] >= 4, listed
