"""Adding publishers from the web pages is limited: per user and IP, and pending ones at once.

A pending publisher reserves a project name, so a script or a stolen session
must not be able to reserve names without end.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.admin.signin import Visitor, sign_in
from tests.conftest import AppClient
from tests.oidc.conftest import AUDIENCE
from tests.oidc.issuer import LocalIssuer
from tilsit.config import InvalidSetting, Settings, load_settings
from tilsit.db.models import PublisherRow
from tilsit.instance import Instance


@pytest.fixture
def settings(tmp_path: Path, database_url: str, issuer: LocalIssuer) -> Settings:
    return load_settings(
        overrides={
            "data": tmp_path / "data",
            "database_url": database_url,
            "oidc_github_issuer": issuer.url,
            "oidc_ca_bundle": str(issuer.ca_pem),
            "oidc_audience": AUDIENCE,
            "publisher_add_rate": "4/1h",
            "pending_publishers_max": 2,
        },
        environ={},
    )


def _pending(visitor: Visitor, name: str) -> httpx.Response:
    return visitor.post(
        "/account/publishing",
        {
            "action": "add",
            "kind": "github",
            "repository": f"octo-org/{name}",
            "workflow": "release.yml",
            "project_name": name,
        },
    )


def _count(instance: Instance) -> int:
    with instance.db.read() as session:
        return int(session.scalar(select(func.count(PublisherRow.id))) or 0)


def test_pending_publishers_are_capped(instance: Instance, client: AppClient) -> None:
    alice = sign_in(instance.settings.db_url, client, "alice")
    assert [_pending(alice, n).status_code for n in ("one", "two")] == [200, 200]
    third = _pending(alice, "three")
    assert third.status_code == 400
    assert "the most allowed at once (2)" in third.text
    assert _count(instance) == 2
    # Removing one frees a place.
    with instance.db.read() as session:
        first = session.scalars(select(PublisherRow.id).order_by(PublisherRow.id)).first()
    removed = alice.post("/account/publishing", {"action": "remove", "publisher": str(first)})
    assert removed.status_code == 200, removed.text
    assert _pending(alice, "three").status_code == 200


def test_adding_is_rate_limited_per_user(instance: Instance, client: AppClient) -> None:
    bob = sign_in(instance.settings.db_url, client, "bob")
    codes = []
    for n in range(5):
        codes.append(_pending(bob, f"p{n}").status_code)
        with instance.db.read() as session:
            ids = session.scalars(
                select(PublisherRow.id).where(PublisherRow.removed_at.is_(None))
            ).all()
        for publisher in ids:
            # Keep under the pending cap, so only the rate limit can refuse.
            bob.post("/account/publishing", {"action": "remove", "publisher": str(publisher)})
    assert codes == [200, 200, 200, 200, 429]
    refused = _pending(bob, "late")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many attempts" in refused.text
    # Administrators are not limited (they set up publishers for others).
    root = sign_in(instance.settings.db_url, client, "root", admin=True)
    assert _pending(root, "admins-own").status_code == 200


def test_a_mistyped_rate_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="publisher_add_rate"):
        load_settings(overrides={"data": tmp_path, "publisher_add_rate": "lots"}, environ={})
