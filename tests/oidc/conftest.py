"""Fixtures for trusted publishing: a local HTTPS OIDC issuer and a server that trusts it.

The server's GitHub issuer setting names the local issuer, and its CA bundle
setting the issuer's test CA, so tokens are verified exactly as GitHub's would
be, over HTTPS, without leaving 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import AppClient
from tests.oidc.issuer import LocalIssuer
from tilsit.auth.oidc.publishers import PublisherSpec, add_publisher, github_spec
from tilsit.auth.tokens import create_token
from tilsit.config import Settings, load_settings
from tilsit.db.engine import Database
from tilsit.db.models import ProjectRow, PublisherRow, UserRow
from tilsit.index.manage import create_user, get_index

AUDIENCE = "tilsit-tests"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[LocalIssuer]:
    with LocalIssuer(tmp_path / "issuer") as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, database_url: str, issuer: LocalIssuer) -> Settings:
    return load_settings(
        overrides={
            "data": tmp_path / "data",
            "database_url": database_url,
            "oidc_github_issuer": issuer.url,
            "oidc_ca_bundle": str(issuer.ca_pem),
            "oidc_audience": AUDIENCE,
        },
        environ={},
    )


def user_named(db: Database, name: str) -> UserRow:
    with db.write() as session:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        return row or create_user(session, name)


def user_token(db: Database, name: str) -> str:
    user_named(db, name)
    with db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == name)).one()
        return create_token(session, user).secret


def project_id(db: Database, name: str, index: str = "main") -> int:
    with db.read() as session:
        return session.scalars(
            select(ProjectRow.id).where(
                ProjectRow.normalized == name, ProjectRow.index_id == get_index(session, index).id
            )
        ).one()


def publisher_for(
    db: Database,
    spec: PublisherSpec,
    *,
    project: str | None = None,
    pending: str | None = None,
    owner: str = "alice",
    index: str = "main",
) -> int:
    """Add a publisher for an existing ``project`` or a ``pending`` name; its id."""
    user_named(db, owner)
    with db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == owner)).one()
        index_row = get_index(session, index)
        row: ProjectRow | None = None
        if project is not None:
            row = session.scalars(
                select(ProjectRow).where(
                    ProjectRow.normalized == project, ProjectRow.index_id == index_row.id
                )
            ).one()
        added = add_publisher(
            session, spec, index=index_row, project=row, pending_name=pending, actor=user
        )
        return added.id


def octo_spec(issuer: LocalIssuer, **kw: str) -> PublisherSpec:
    return github_spec(issuer.url, "octo-org/octo-repo", "release.yml", **kw)


@dataclass
class Minted:
    status: int
    body: dict[str, object]

    @property
    def code(self) -> str | None:
        errors = self.body.get("errors")
        if isinstance(errors, list) and errors:
            return str(errors[0]["code"])
        return None


def mint(client: AppClient, jwt_text: object, path: str = "/_/oidc/mint-token") -> Minted:
    response = client.post(path, json={"token": jwt_text})
    return Minted(response.status_code, response.json())


def publisher_row(db: Database, publisher_id: int) -> PublisherRow:
    with db.read() as session:
        row = session.get(PublisherRow, publisher_id)
        assert row is not None
        return row
