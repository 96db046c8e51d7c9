"""A carried mirror (a mirror of a TUF-signed tilsit) is carried by every host.

The origin signs its index; one host runs the mirror's scheduled sync, which writes
the origin's signed bytes into that host's tree. The other host never runs that
sync, so it carries the origin's metadata itself after following the sync's rows
(upstream/mirror_trust.py ``carry_here``): both hosts then serve the origin's
timestamp byte for byte, and ``tilsit verify`` against the ORIGIN's root passes on
each. Without it the second host serves the mirror signed by nobody the client trusts.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.hosts.conftest import Cluster, wait_for
from tests.trust.signed import INDEX, first_dists, run_verify
from tests.upstream.conftest import make_mirror, start_upstream
from tilsit.instance import open_instance


def test_every_host_carries_the_origin_metadata_of_a_mirror(
    cluster: Cluster, tmp_path: Path, postgres_base: str | None
) -> None:
    (tmp_path / "origin").mkdir()
    origin = start_upstream(tmp_path / "origin", postgres_base)
    try:
        origin_tree = origin.live.settings.tree_dir
        stamp = origin_tree / INDEX / "tuf" / "timestamp.json"
        wait_for(stamp.is_file, timeout=30)
        origin.upload(*first_dists())
        instance = open_instance(cluster.settings("a"))
        try:
            make_mirror(instance, f"{origin.url}/{INDEX}/simple/", interval=3600)
        finally:
            instance.close()
        a = cluster.start("a")
        b = cluster.start("b")

        def carries(url: str) -> bool:
            answer = httpx.get(f"{url}/mirror/tuf/timestamp.json", timeout=5)
            return answer.status_code == 200 and answer.content == stamp.read_bytes()

        for host in (a, b):
            wait_for(lambda host=host: carries(host.url), timeout=90)
        root = origin_tree / INDEX / "tuf" / "1.root.json"
        for host in (a, b):
            result = run_verify(f"{host.url}/mirror/", "--root", str(root), "--fresh")
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        origin.live.process.terminate()
        origin.live.process.wait(timeout=20)
