"""One project that cannot be rendered is reported and skipped; nothing else stops.

The faults are real, not mocked: a project whose directory in the tree is taken
by a file, and (on SQLite, whose columns hold it) a project row with a name the
tree cannot hold, inserted as data from before names were bounded.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import make_wheel
from tests.conftest import BACKEND, AppClient, start_server, stop
from tests.uploads import upload
from tilsit.db.models import IndexRow, JournalRow, ProjectRow
from tilsit.index.journal import record
from tilsit.instance import Instance
from tilsit.trust.repository import IndexRepository


def _targets(instance: Instance) -> set[str]:
    signing = instance.signing
    return set(IndexRepository(instance.tree, "main", signing.keys, signing.settings).targets())


def _journal_end(instance: Instance) -> int:
    with instance.db.read() as session:
        return int(session.scalar(select(func.max(JournalRow.serial))) or 0)


def _occupy(instance: Instance, name: str) -> Path:
    """Put a file where the project's directory goes: every write below it fails."""
    blocker = instance.settings.tree_dir / "main" / "simple" / name
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a directory\n")
    return blocker


def test_a_project_that_cannot_render_is_skipped_and_reported(
    client: AppClient, token: str, instance: Instance, tmp_path: Path
) -> None:
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    blocker = _occupy(instance, "broken")
    # The upload is stored (acknowledged), its render fails, and it is reported.
    assert upload(client, make_wheel("broken", "1.0"), token).status_code == 200
    # Everyone else goes on: uploads succeed, pages appear, the journal advances.
    response = upload(client, make_wheel("second", "1.0"), token)
    assert response.status_code == 200, response.text
    assert client.get("/simple/second/").status_code == 200
    assert "second" in client.get("/simple/?format=json").text
    assert instance.tree.serial() == _journal_end(instance)
    # TUF signed what rendered, and nothing of the broken project's pages.
    targets = _targets(instance)
    assert "simple/second/index.html" in targets
    assert "simple/broken/index.html" not in targets
    # Its files were placed before its pages failed: their targets are not signed either.
    assert not [t for t in targets if t.startswith("packages/") and "/broken-" in t]
    assert [t for t in targets if t.startswith("packages/") and "/second-" in t]
    health = client.get("/_/health").json()
    assert health["status"] == "degraded"
    [failure] = health["render_failures"]
    assert (failure["index"], failure["project"]) == ("main", "broken")
    assert "simple/broken" in failure["error"] or "Error" in failure["error"]

    # The fault is cleared: the next render that has work tries again, and succeeds.
    blocker.unlink()
    assert upload(client, make_wheel("third", "1.0"), token).status_code == 200
    assert client.get("/simple/broken/").status_code == 200
    assert "simple/broken/index.html" in _targets(instance)
    health = client.get("/_/health").json()
    assert health["status"] == "ok"
    assert health["render_failures"] == []


def test_serve_starts_while_a_project_cannot_render(
    client: AppClient, token: str, instance: Instance, tmp_path: Path
) -> None:
    assert upload(client, make_wheel("fine", "1.0"), token).status_code == 200
    _occupy(instance, "stuck")
    assert upload(client, make_wheel("stuck", "1.0"), token).status_code == 200
    # As after a crash before the render: start-up renders the whole journal again.
    (instance.settings.tree_dir / ".serial").write_text("0\n")
    (instance.settings.data / "render-failures.json").unlink()
    server = start_server(instance.settings, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/simple/fine/").status_code == 200
            health = http.get("/_/health").json()
            assert health["status"] == "degraded"
            assert [f["project"] for f in health["render_failures"]] == ["stuck"]
            response = upload(http, make_wheel("later", "1.0"), server.token())
            assert response.status_code == 200, response.text
            assert http.get("/simple/later/").status_code == 200
    finally:
        stop(server)
    assert "render failed for project 'stuck'" in (tmp_path / "serve.log").read_text()


@pytest.mark.skipif(
    BACKEND != "sqlite", reason="PostgreSQL's name column (200) cannot hold the old data"
)
def test_a_name_from_before_the_bound_does_not_stop_the_server(
    client: AppClient, token: str, instance: Instance, tmp_path: Path
) -> None:
    long_name = "a" * 300  # no directory can have this name: "File name too long"
    with instance.db.write() as session:
        index = session.scalars(select(IndexRow).where(IndexRow.name == "main")).one()
        row = ProjectRow(index_id=index.id, name=long_name, normalized=long_name, confusable="x")
        session.add(row)
        session.flush()
        record(session, index, "create", project=row, actor="old data")
    response = upload(client, make_wheel("neighbour", "1.0"), token)
    assert response.status_code == 200, response.text
    assert client.get("/simple/neighbour/").status_code == 200
    assert instance.tree.serial() == _journal_end(instance)
    [failure] = client.get("/_/health").json()["render_failures"]
    assert failure["project"] == long_name
    assert "File name too long" in failure["error"]
    (instance.settings.tree_dir / ".serial").write_text("0\n")
    server = start_server(instance.settings, tmp_path / "serve.log")
    try:
        assert httpx.get(f"{server.url}/simple/neighbour/", timeout=30).status_code == 200
    finally:
        stop(server)
