"""Scheduled syncs: a mirror with an interval is due once that long has passed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.builders import make_wheel
from tests.upstream.conftest import make_mirror, tree_projects
from tests.upstream.static import StaticServer, StaticTree
from tilsit.config import Settings
from tilsit.instance import Instance
from tilsit.upstream.schedule import due_mirrors, run_due


def test_due_mirrors_are_synced_once_per_interval(
    tmp_path: Path, mirror_instance: tuple[Settings, Instance]
) -> None:
    instance = mirror_instance[1]
    tree = StaticTree(tmp_path / "static")
    tree.add("solo", make_wheel("solo", "1.0"))
    server = StaticServer(tree.root)
    try:
        make_mirror(instance, f"{server.url}/simple/", name="hourly", interval=3600)
        make_mirror(instance, f"{server.url}/simple/", name="manual")
        assert due_mirrors(instance) == ["hourly"]  # never ran: due now
        reports = asyncio.run(run_due(instance, workers=2))
        assert [(r.index, r.ok) for r in reports] == [("hourly", True)]
        assert list(tree_projects(instance, "hourly")) == ["solo"]
        assert due_mirrors(instance) == []
        later = datetime.now(UTC) + timedelta(seconds=3601)
        assert due_mirrors(instance, later) == ["hourly"]
    finally:
        server.stop()
