"""Uploads with scoped API tokens, through twine against a live server.

Each refusal must be a 403 that says why, store nothing, and leave a
``token.refused`` event in the audit log (of the token's owner when the token
is known). The attack cases: a project or index outside the token's scope, an
expired token, a revoked one, and tampered secrets (one character changed,
truncated, another prefix).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy

from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe, output
from tests.conftest import LiveServer, create_database, start_server, stop
from tilsit.auth.tokens import create_token
from tilsit.config import load_settings
from tilsit.db.engine import Database
from tilsit.db.models import AuditEventRow, TokenRow, UserRow
from tilsit.index.manage import create_user, get_index

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def server(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("tokens")
    settings = load_settings(
        overrides={"data": root / "data", "database_url": create_database(postgres_base)},
        environ={},
    )
    live = start_server(settings, root / "server.log")
    live.cli("index", "create", "other")
    yield live
    stop(live)


@pytest.fixture
def db(server: LiveServer) -> Iterator[Database]:
    database = Database(server.settings.db_url)
    yield database
    database.dispose()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def _token(
    db: Database,
    *,
    projects: list[str] | None = None,
    index: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    with db.write() as session:
        user = session.scalars(
            sqlalchemy.select(UserRow).where(UserRow.name == "alice")
        ).one_or_none() or create_user(session, "alice")
        scope = get_index(session, index) if index else None
        return create_token(
            session, user, projects=projects, index=scope, expires_at=expires_at
        ).secret


def _twine(
    sandbox: Sandbox, server: LiveServer, token: str, name: str, version: str, index: str = ""
) -> subprocess.CompletedProcess[str]:
    directory = sandbox.root / f"dist-{name}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    path = make_wheel(name, version).write(directory)
    url = f"{server.url}/{index + '/' if index else ''}legacy/"
    return sandbox.run(
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        url,
        "-u",
        "__token__",
        "-p",
        token,
        path,
    )


def _refusals(db: Database) -> list[AuditEventRow]:
    with db.read() as session:
        return list(
            session.scalars(
                sqlalchemy.select(AuditEventRow)
                .where(AuditEventRow.action == "token.refused")
                .order_by(AuditEventRow.id)
            )
        )


def _refused(
    db: Database,
    server: LiveServer,
    result: subprocess.CompletedProcess[str],
    reason: str,
    project: str,
    owner: str | None,
) -> AuditEventRow:
    """Assert a 403 with ``reason``, nothing stored, and one new token.refused event."""
    text = " ".join(output(result).split())  # twine wraps its output
    assert result.returncode != 0, describe(result)
    assert "403" in text, describe(result)
    assert reason in text, describe(result)
    status, _ = _get(server, f"/simple/{project}/")
    assert status == 404, f"{project} was stored despite the refusal"
    event = _refusals(db)[-1]
    assert reason in event.detail["reason"]
    with db.read() as session:
        user = session.get(UserRow, event.user_id) if event.user_id else None
        assert (user.name if user else None) == owner
    return event


def _get(server: LiveServer, path: str) -> tuple[int, str]:
    import httpx

    response = httpx.get(f"{server.url}{path}", timeout=30)
    return response.status_code, response.text


def test_project_scoped_token_uploads_in_scope_only(
    server: LiveServer, db: Database, sandbox: Sandbox
) -> None:
    token = _token(db, projects=["tok-in"])
    before = len(_refusals(db))
    ok = _twine(sandbox, server, token, "tok-in", "1.0")
    assert ok.returncode == 0, describe(ok)
    assert _get(server, "/simple/tok-in/")[0] == 200
    assert len(_refusals(db)) == before
    with db.read() as session:
        row = session.scalars(
            sqlalchemy.select(TokenRow).where(TokenRow.display_prefix == token[:13])
        ).one()
        assert row.last_used_at is not None
    out = _twine(sandbox, server, token, "tok-out", "1.0")
    event = _refused(
        db, server, out, "This API token is not valid for project 'tok-out'", "tok-out", "alice"
    )
    assert event.detail["token"] == token[:13]
    assert len(_refusals(db)) == before + 1


def test_index_scoped_token_is_refused_by_other_indexes(
    server: LiveServer, db: Database, sandbox: Sandbox
) -> None:
    token = _token(db, index="other")
    ok = _twine(sandbox, server, token, "tok-idx", "1.0", index="other")
    assert ok.returncode == 0, describe(ok)
    out = _twine(sandbox, server, token, "tok-idx-main", "1.0")
    _refused(
        db, server, out, "This API token is not valid for index 'main'", "tok-idx-main", "alice"
    )


def test_expired_token_is_refused(server: LiveServer, db: Database, sandbox: Sandbox) -> None:
    token = _token(db, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    out = _twine(sandbox, server, token, "tok-expired", "1.0")
    _refused(db, server, out, "the API token has expired", "tok-expired", "alice")


def test_revoked_token_is_refused(server: LiveServer, db: Database, sandbox: Sandbox) -> None:
    token = _token(db)
    ok = _twine(sandbox, server, token, "tok-rev", "1.0")
    assert ok.returncode == 0, describe(ok)
    revoked = server.cli("token", "revoke", token[:13])
    assert f"revoked {token[:13]}" in revoked.stdout
    out = _twine(sandbox, server, token, "tok-rev2", "1.0")
    _refused(db, server, out, "the API token has been revoked", "tok-rev2", "alice")
    with db.read() as session:
        revoked_events = session.scalars(
            sqlalchemy.select(AuditEventRow).where(AuditEventRow.action == "token.revoked")
        ).all()
        assert any(e.detail["token"] == token[:13] for e in revoked_events)


def _one_changed(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("B" if last != "B" else "C")


TAMPERED = {
    "one character changed": (_one_changed, "the API token is not known to this server"),
    "truncated": (lambda t: t[:-1], "not a tilsit API token"),
    "wrong prefix": (lambda t: "pypi-" + t.removeprefix("tilsit-"), "not a tilsit API token"),
    "doubled": (lambda t: t + t, "not a tilsit API token"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_token_is_refused(
    server: LiveServer, db: Database, sandbox: Sandbox, case: str
) -> None:
    change, reason = TAMPERED[case]
    token = _token(db)
    project = f"tok-tamper-{list(TAMPERED).index(case)}"
    out = _twine(sandbox, server, change(token), project, "1.0")
    event = _refused(db, server, out, reason, project, None)
    # A tampered secret is not echoed back into the log whole.
    assert change(token) not in str(event.detail)
    # The genuine token still works.
    ok = _twine(sandbox, server, token, project, "1.0")
    assert ok.returncode == 0, describe(ok)
