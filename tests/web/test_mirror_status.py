"""``/<index>/mirror-status.json`` serves the freshness a mirror writes into its tree."""

from __future__ import annotations

from tests.conftest import AppClient
from tilsit.index.manage import create_index
from tilsit.index.upstream import upstream_state
from tilsit.instance import Instance
from tilsit.upstream.status import write_status


def test_mirror_status_route(client: AppClient, instance: Instance) -> None:
    with instance.db.write() as session:
        index = create_index(
            session, "upstream", "mirror", options={"upstream": "https://upstream.invalid/simple/"}
        )
        state = upstream_state(session, index)
        state.upstream_serial = state.synced_serial = 41
        written = write_status(instance.tree, index, state)
    instance.renderer.catch_up()
    response = client.get("/upstream/mirror-status.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-cache"
    assert response.json() == written
    assert response.json()["synced_serial"] == 41
    assert client.head("/upstream/mirror-status.json").content == b""
    missing = client.get("/main/mirror-status.json")
    assert missing.status_code == 404
    assert "not a synced mirror" in missing.text
