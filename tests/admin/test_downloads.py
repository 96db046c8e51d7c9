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
from datetime import UTC, datetime, timedelta
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
from tilsit.auth.policy import busiest_project_ids, critical_project_ids, record_critical
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import DownloadClientRow, DownloadCountRow, FileRow, ProjectRow, ReleaseRow
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


def _from(portal: anyio.from_thread.BlockingPortal, app: TilsitApp, address: str) -> AppClient:
    """An in-process client that the app sees coming from ``address``."""
    client = AppClient(portal, app)
    portal.call(client.http.aclose)
    client.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://testserver",
    )
    return client


def test_which_responses_count_as_downloads(instance: Instance, token: str) -> None:
    install()
    app = TilsitApp(instance)
    with anyio.from_thread.start_blocking_portal() as portal:
        clients = [_from(portal, app, f"192.0.2.{n}") for n in range(1, 12)]
        client = clients[0]
        assert upload(client, make_wheel("counted", "1.0"), token).status_code == 200
        page = json.loads(client.get("/simple/counted/", headers={"accept": JSON}).text)
        url = page["files"][0]["url"]
        path = "/packages/" + url.split("/packages/", 1)[1]
        full = client.get(path)  # 200, whole body: counts
        size, etag = len(full.content), full.headers["etag"]
        # Each of these from a client of its own, so that only the response decides.
        counted = [
            clients[1].get(path, headers={"range": f"bytes=0-{size - 1}"}),  # the whole file
            clients[2].get(path, headers={"range": "bytes=0-"}),  # the whole file
        ]
        ignored = [
            clients[3].get(path, headers={"range": "bytes=0-0"}),  # one byte
            clients[4].get(path, headers={"range": "bytes=0-9"}),  # a start only
            clients[5].get(path, headers={"range": f"bytes=10-{size - 1}"}),  # the rest
            clients[6].head(path),
            clients[7].get(path, headers={"if-none-match": etag}),  # 304
            clients[8].get(path + ".metadata"),
            clients[9].get(path[:-5] + "x.whl"),  # 404: not served
        ]
        assert [r.status_code for r in counted] == [206, 206]
        assert [r.status_code for r in ignored] == [206, 206, 206, 200, 304, 200, 404]
        assert app.downloads.pending == 3
        assert _downloads(instance.db, "counted") == 0  # nothing written per download
        assert portal.call(app.downloads.flush) == 3
        assert _downloads(instance.db, "counted") == 3
        # The same clients again, the same day: nothing more.
        for again in clients[:3]:
            assert again.get(path).status_code == 200
        assert portal.call(app.downloads.flush) == 0
        clients[10].get(path)
        assert portal.call(app.downloads.flush) == 1
        assert _downloads(instance.db, "counted") == 4  # added to the same day's row
        for each in clients:
            portal.call(each.http.aclose)
    with instance.db.read() as session:
        # Addresses are kept only as keyed hashes.
        stored = list(session.scalars(select(DownloadClientRow.client)))
        assert len(stored) == 4 and not any("192.0.2" in c for c in stored)


def test_a_project_stays_critical_for_critical_keep_days(instance: Instance, token: str) -> None:
    install()
    app = TilsitApp(instance)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = _from(portal, app, "192.0.2.1")
        for name in ("first", "second"):
            assert upload(client, make_wheel(name, "1.0"), token).status_code == 200
        portal.call(client.http.aclose)
    today = datetime.now(UTC).date()
    with instance.db.write() as session:
        first, second = (
            session.scalars(select(FileRow.id).where(FileRow.filename.startswith(n))).one()
            for n in ("first", "second")
        )
        session.add(DownloadCountRow(file_id=first, day=today, count=5))
        session.flush()
        record_critical(session, 50, 30, today)
        session.add(DownloadCountRow(file_id=second, day=today, count=9))
        session.flush()
        record_critical(session, 50, 30, today)
        ids = {
            n: session.scalars(select(ProjectRow.id).where(ProjectRow.normalized == n)).one()
            for n in ("first", "second")
        }
        assert busiest_project_ids(session, 50, today) == [ids["second"]]
        assert critical_project_ids(session, 50, today) == [ids["second"], ids["first"]]
        later = today + timedelta(days=30)
        assert ids["first"] in critical_project_ids(session, 50, later)
        assert ids["first"] not in critical_project_ids(session, 50, later + timedelta(days=1))


@pytest.fixture
def critical_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        settings,
        tmp_path / "server.log",
        env={"TILSIT_REQUIRE_2FA": "critical", "TILSIT_CRITICAL_PERCENT": "50"},
    )
    yield server
    stop(server)


def _wait_for(db: Database, wanted: dict[str, int], seconds: float = 30) -> dict[str, int]:
    """The projects' counts once they are ``wanted`` (the server writes every few seconds),
    or as they are when ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        counts = {name: _downloads(db, name) for name in wanted}
        if counts == wanted or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def _file_path(http: httpx.Client, project: str) -> str:
    page = http.get(f"/simple/{project}/", headers={"accept": JSON}).json()
    return "/packages/" + page["files"][0]["url"].split("/packages/", 1)[1]


def test_forged_downloads_neither_make_nor_unmake_a_critical_project(
    critical_server: LiveServer, settings: Settings
) -> None:
    """The attack: one-byte ranges and repeated GETs to push a project into the critical
    set, then downloads of another project (from many addresses) to push it out."""
    server = critical_server
    token = server.token("alice")
    db = Database(settings.db_url)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for name in ("target", "rival"):
                assert upload(http, make_wheel(name, "1.0"), token).status_code == 200
            target = _file_path(http, "target")
            for _ in range(1000):
                response = http.get(target, headers={"range": "bytes=0-0"})
                assert response.status_code == 206 and len(response.content) == 1
            for _ in range(50):
                assert http.get(target).status_code == 200
            assert _wait_for(db, {"target": 1}) == {"target": 1}
            time.sleep(6)  # one more batch interval: still one download
            assert _downloads(db, "target") == 1
            # target is critical now (the only project with downloads).
            refused = upload(http, make_wheel("target", "2.0"), token)
            assert refused.status_code == 403 and "critical project" in refused.text
            # Three other addresses (behind a proxy on this host, as uvicorn trusts it)
            # make rival the busiest; target stays critical for critical_keep_days.
            rival = _file_path(http, "rival")
            for n in range(1, 4):
                headers = {"x-forwarded-for": f"198.51.100.{n}"}
                assert http.get(rival, headers=headers).status_code == 200
            assert _wait_for(db, {"target": 1, "rival": 3}) == {"target": 1, "rival": 3}
            with db.read() as session:
                ids = {
                    n: session.scalars(
                        select(ProjectRow.id).where(ProjectRow.normalized == n)
                    ).one()
                    for n in ("target", "rival")
                }
                assert busiest_project_ids(session, 50) == [ids["rival"]]
            still = upload(http, make_wheel("target", "2.0"), token)
            assert still.status_code == 403 and "critical project" in still.text
            assert upload(http, make_wheel("rival", "2.0"), token).status_code == 403
    finally:
        db.dispose()


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
            # pip counts once per day from this address, however often it runs; two
            # other addresses (forwarded by a proxy on this host) count once each.
            for _ in range(2):
                _pip_download(sandbox, server, "busy")
            busy_path = _file_path(http, "busy")
            for n in (1, 2):
                forwarded = {"x-forwarded-for": f"198.51.100.{n}"}
                assert http.get(busy_path, headers=forwarded).status_code == 200
            _pip_download(sandbox, server, "quiet")
            assert _wait_for(db, {"busy": 3, "quiet": 1}) == {"busy": 3, "quiet": 1}
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
            forwarded = {"x-forwarded-for": "198.51.100.3"}
            assert http.get(busy_path, headers=forwarded).status_code == 200
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
