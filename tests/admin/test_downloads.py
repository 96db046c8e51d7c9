"""Download counts, the critical projects computed from them, and the 2FA policy on them.

In process: exactly which responses count. Live: real ``pip download`` runs are
counted (in memory, then written in a batch, and at shutdown), the busiest
project becomes critical, and under ``require_2fa = "critical"`` its maintainer
without 2FA may no longer upload to it, while ``"off"`` lets them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import httpx
import pytest
from sqlalchemy import func, select

from tests.admin.signin import sign_in
from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import AppClient, LiveServer, start_server, stop
from tests.uploads import upload
from tilsit.auth.policy import critical_project_ids
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import DownloadCountRow, FileRow, ProjectRow, ReleaseRow
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

JSON = "application/vnd.pypi.simple.v1+json"


def _downloads(db: Database, project: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(DownloadCountRow.count), 0))
                .join(FileRow, FileRow.id == DownloadCountRow.file_id)
                .join(ReleaseRow, ReleaseRow.id == FileRow.release_id)
                .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
                .where(ProjectRow.normalized == project)
            )
            or 0
        )


def test_which_responses_count_as_downloads(instance: Instance, token: str) -> None:
    install()
    app = TilsitApp(instance)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, app)
        assert upload(client, make_wheel("counted", "1.0"), token).status_code == 200
        page = json.loads(client.get("/simple/counted/", headers={"accept": JSON}).text)
        url = page["files"][0]["url"]
        path = "/packages/" + url.split("/packages/", 1)[1]
        etag = client.get(path).headers["etag"]  # 200: counts
        assert client.get(path, headers={"range": "bytes=0-9"}).status_code == 206  # counts
        assert client.get(path, headers={"range": "bytes=10-19"}).status_code == 206  # no
        assert client.head(path).status_code == 200  # no: HEAD
        assert client.get(path, headers={"if-none-match": etag}).status_code == 304  # no
        assert client.get(path + ".metadata").status_code == 200  # no: metadata
        assert client.get(path[:-5] + "x.whl").status_code == 404  # no: not served
        assert app.downloads.pending == 2
        assert _downloads(instance.db, "counted") == 0  # nothing written per download
        assert portal.call(app.downloads.flush) == 2
        assert _downloads(instance.db, "counted") == 2
        client.get(path)
        assert portal.call(app.downloads.flush) == 1
        assert _downloads(instance.db, "counted") == 3  # added to the same day's row
        portal.call(client.http.aclose)


@pytest.fixture
def critical_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        settings,
        tmp_path / "server.log",
        env={"TILSIT_REQUIRE_2FA": "critical", "TILSIT_CRITICAL_PERCENT": "50"},
    )
    yield server
    stop(server)


def _pip_download(sandbox: Sandbox, server: LiveServer, project: str) -> None:
    # A directory of its own each time: pip skips a file the directory already has.
    target = sandbox.root / f"downloads{len(sandbox.runs)}"
    result = sandbox.run(
        "pip",
        "download",
        "--no-deps",
        "--index-url",
        f"{server.url}/simple/",
        "-d",
        target,
        project,
    )
    assert result.returncode == 0, describe(result)


@pytest.mark.clients
def test_pip_downloads_make_a_project_critical_and_the_policy_applies(
    critical_server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    server = critical_server
    sandbox = Sandbox(tmp_path / "sandbox")
    token = server.token("alice")
    db = Database(settings.db_url)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for name in ("busy", "quiet"):
                assert upload(http, make_wheel(name, "1.0"), token).status_code == 200
            # No downloads yet: nothing is critical, alice uploads without 2FA.
            assert upload(http, make_wheel("busy", "1.1"), token).status_code == 200
            for _ in range(3):
                _pip_download(sandbox, server, "busy")
            _pip_download(sandbox, server, "quiet")
            deadline = time.monotonic() + 30
            while (_downloads(db, "busy"), _downloads(db, "quiet")) != (3, 1):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)  # the server writes its counts every few seconds
            assert _downloads(db, "busy") == 3
            assert _downloads(db, "quiet") == 1
            with db.read() as session:
                busy = session.scalars(
                    select(ProjectRow.id).where(ProjectRow.normalized == "busy")
                ).one()
                # Two hosted projects, top 50 %: one is critical, the busiest.
                assert critical_project_ids(session, 50) == [busy]

            refused = upload(http, make_wheel("busy", "2.0"), token)
            assert refused.status_code == 403
            assert "critical project" in refused.text
            assert "two-factor" in refused.text
            assert upload(http, make_wheel("quiet", "2.0"), token).status_code == 200

            admin = sign_in(settings.db_url, http, "root", admin=True)
            page = admin.get("/admin/2fa")
            assert page.status_code == 200
            text = " ".join(page.text.split())
            assert 'id="critical-busy"' in text
            assert "critical-quiet" not in text
            assert "alice (Owner): no 2FA" in text
            assert "0 of 1 (0.0 %)" in text
            assert "does not see those downloads" in text  # nginx-served files are not counted
            assert '<tr id="share-uploaders"><th scope="row">Uploaders' in text

            # One more download, then shutdown: the last batch is written as the server stops.
            _pip_download(sandbox, server, "busy")
        stop(server)
        assert _downloads(db, "busy") == 4

        # The same data with the policy off: alice may upload to the critical project.
        relaxed = start_server(
            settings, tmp_path / "relaxed.log", env={"TILSIT_REQUIRE_2FA": "off"}
        )
        try:
            with httpx.Client(base_url=relaxed.url, timeout=60) as http:
                assert upload(http, make_wheel("busy", "2.0"), token).status_code == 200
        finally:
            stop(relaxed)
    finally:
        db.dispose()
