"""Trusted publishing against a live HTTPS server: real clients and real concurrency.

``uv publish --trusted-publishing always`` and ``pdm publish`` run in a faked
GitHub Actions environment whose ``ACTIONS_ID_TOKEN_REQUEST_URL`` is the local
issuer; they ask tilsit for its audience, get a JWT, mint, upload (and uv burns).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import TlsServer, start_tls_server, stop
from tests.oidc.conftest import AUDIENCE, octo_spec, publisher_for, user_named, user_token
from tests.oidc.issuer import REQUEST_TOKEN, LocalIssuer
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.db.engine import Database


@pytest.fixture
def server(
    settings: Settings, tmp_path: Path, issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TlsServer]:
    # The server process reads its settings from the environment.
    monkeypatch.setenv("TILSIT_OIDC_GITHUB_ISSUER", issuer.url)
    monkeypatch.setenv("TILSIT_OIDC_CA_BUNDLE", str(issuer.ca_pem))
    monkeypatch.setenv("TILSIT_OIDC_AUDIENCE", AUDIENCE)
    tls = start_tls_server(settings, tmp_path / "server.log", tmp_path / "tls")
    yield tls
    stop(tls.live)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_url)
    yield database
    database.dispose()


def _ci_env(issuer: LocalIssuer, bundle: Path) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.request_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        "SSL_CERT_FILE": str(bundle),
    }


def _bundle(tmp_path: Path, server: TlsServer, issuer: LocalIssuer) -> Path:
    """One CA file trusting both tilsit's and the issuer's test CAs."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(server.ca_pem.read_bytes() + issuer.ca_pem.read_bytes())
    return bundle


def _simple_page(server: TlsServer, project: str) -> str:
    response = httpx.get(f"{server.live.url}/simple/{project}/", verify=server.context)
    response.raise_for_status()
    return response.text


def _make_project(server: TlsServer, name: str) -> None:
    token = server.live.token("alice")
    with httpx.Client(base_url=server.live.url, verify=server.context) as client:
        assert upload(client, make_wheel(name, "0.1"), token).status_code == 200


def test_uv_publish_with_trusted_publishing(
    server: TlsServer, issuer: LocalIssuer, db: Database, tmp_path: Path
) -> None:
    _make_project(server, "octo-pkg")
    publisher_for(db, octo_spec(issuer), project="octo-pkg")
    (tmp_path / "dist").mkdir()
    dist = make_wheel("octo-pkg", "1.0").write(tmp_path / "dist")
    sandbox = Sandbox(tmp_path / "uv")
    result = sandbox.run(
        "uv",
        "publish",
        "--trusted-publishing",
        "always",
        "--publish-url",
        f"{server.live.url}/legacy/",
        dist,
        env=_ci_env(issuer, _bundle(tmp_path, server, issuer)),
    )
    assert result.returncode == 0, describe(result)
    assert issuer.ci_requests == [AUDIENCE]
    assert dist.name in _simple_page(server, "octo-pkg")
    # uv burned the minted token once it was done.
    log = (tmp_path / "server.log").read_text()
    assert '"POST /_/oidc/mint-token' in log
    assert '"POST /_/oidc/burn-token HTTP/1.1" 202' in log


def test_pdm_publish_with_trusted_publishing_creates_a_pending_project(
    server: TlsServer, issuer: LocalIssuer, db: Database, tmp_path: Path
) -> None:
    publisher_for(db, octo_spec(issuer), pending="pdm-fresh", owner="carol")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "pdm-fresh"\nversion = "1.0"\nrequires-python = ">=3.8"\n'
        '[build-system]\nrequires = ["pdm-backend"]\nbuild-backend = "pdm.backend"\n'
    )
    (project / "dist").mkdir()
    dist = make_wheel("pdm-fresh", "1.0").write(project / "dist")
    sandbox = Sandbox(tmp_path / "pdm")
    bundle = _bundle(tmp_path, server, issuer)
    result = sandbox.run(
        "pdm",
        "publish",
        "--no-build",
        "--repository",
        f"{server.live.url}/legacy/",
        "--ca-certs",
        str(bundle),
        cwd=project,
        env=_ci_env(issuer, bundle),
    )
    assert result.returncode == 0, describe(result)
    assert issuer.ci_requests == [AUDIENCE]
    assert dist.name in _simple_page(server, "pdm-fresh")
    from sqlalchemy import select

    from tilsit.db.models import ProjectRow, RoleRow, UserRow

    with db.read() as session:
        row = session.scalars(select(ProjectRow).where(ProjectRow.normalized == "pdm-fresh")).one()
        owners = session.scalars(
            select(UserRow.name)
            .join(RoleRow, RoleRow.user_id == UserRow.id)
            .where(RoleRow.project_id == row.id, RoleRow.role == "Owner")
        ).all()
    assert owners == ["carol"]


def test_fifty_concurrent_exchanges_of_one_token_mint_once(
    server: TlsServer, issuer: LocalIssuer, db: Database
) -> None:
    user_named(db, "alice")
    _make_project(server, "octo-pkg")
    publisher_for(db, octo_spec(issuer), project="octo-pkg")
    token = issuer.token(aud=AUDIENCE)

    def exchange(_: int) -> tuple[int, str | None]:
        response = httpx.post(
            f"{server.live.url}/_/oidc/mint-token",
            json={"token": token},
            verify=server.context,
            timeout=60,
        )
        body = response.json()
        return response.status_code, (body.get("errors") or [{}])[0].get("code")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(exchange, range(50)))
    successes = [r for r in results if r[0] == 200]
    assert len(successes) == 1, results
    assert all(r == (422, "invalid-reuse-token") for r in results if r[0] != 200), results
    assert user_token  # the helper stays importable for other tests
