"""The files table names how a file came: its uploader, or the trusted publisher whose
token uploaded it (known from the upload's audit event; the file row has no user)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.browse.conftest import wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.oidc.publishers import add_publisher, github_spec
from tilsit.auth.tokens import PREFIX
from tilsit.db.models import ProjectRow, TokenRow, UserRow
from tilsit.index.manage import get_index
from tilsit.instance import Instance


def _publisher_token(instance: Instance) -> str:
    """A token as the OIDC exchange mints it for a GitHub publisher of ``gadget`` (the
    exchange itself is tested in tests/oidc)."""
    secret = PREFIX + secrets.token_urlsafe(32)
    with instance.db.write() as session:
        index = get_index(session, "main")
        project = session.scalars(select(ProjectRow).where(ProjectRow.normalized == "gadget")).one()
        alice = session.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        spec = github_spec(
            "https://token.actions.githubusercontent.com", "acme/gadget", "release.yml"
        )
        publisher = add_publisher(session, spec, index=index, project=project, actor=alice)
        session.add(
            TokenRow(
                user_id=None,
                publisher_id=publisher.id,
                token_hash=hashlib.sha256(secret.encode()).hexdigest(),
                display_prefix=secret[: len(PREFIX) + 6],
                description=f"trusted publishing: github publisher #{publisher.id}",
                index_id=index.id,
                projects=["gadget"],
                expires_at=datetime.now(UTC) + timedelta(minutes=15),
            )
        )
    return secret


def test_a_file_uploaded_by_trusted_publishing_is_marked_with_its_publisher(
    client: AppClient, token: str, instance: Instance
) -> None:
    assert upload(client, wheel("gadget", "1.0"), token).status_code == 200
    trusted = _publisher_token(instance)
    response = upload(client, wheel("gadget", "1.1"), trusted)
    assert response.status_code == 200, response.text

    page = client.get("/main/project/gadget/1.1/")
    assert page.status_code == 200
    assert "Trusted publishing</span>" in page.text
    assert "GitHub acme/gadget, workflow release.yml" in page.text
    by_user = client.get("/main/project/gadget/1.0/")
    assert "Trusted publishing</span>" not in by_user.text
    assert "alice" in by_user.text
