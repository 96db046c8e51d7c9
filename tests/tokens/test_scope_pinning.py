"""A token limited to projects is limited to one index: the one given, else the one index
where its user has a role on all those projects, else the default index (at use)."""

from __future__ import annotations

import sqlalchemy

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.token_admin import issue_token, scope_text
from tilsit.auth.tokens import create_token
from tilsit.db.models import IndexRow, UserRow
from tilsit.index.manage import create_index, create_user, get_index
from tilsit.instance import Instance


def _user(instance: Instance, name: str) -> str:
    with instance.db.write() as db:
        row = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == name)).one_or_none()
        return create_token(db, row or create_user(db, name)).secret


def _issued(instance: Instance, projects: list[str], index: str | None = None) -> str:
    with instance.db.write() as db:
        alice = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == "alice")).one()
        new = issue_token(
            db, alice, projects=projects, index=get_index(db, index) if index else None
        )
        named = db.get(IndexRow, new.row.index_id) if new.row.index_id else None
        return scope_text(new.row, named.name if named else None)


def test_project_tokens_are_pinned_where_their_projects_are(
    instance: Instance, client: AppClient
) -> None:
    with instance.db.write() as db:
        create_index(db, "team", actor="test")
    instance.renderer.catch_up()
    alice = _user(instance, "alice")
    for dist, where in (
        (make_wheel("only-team", "1.0"), "/team/legacy/"),
        (make_wheel("both", "1.0"), "/team/legacy/"),
        (make_wheel("both", "1.0"), "/legacy/"),
    ):
        assert upload(client, dist, alice, where).status_code == 200
    assert _issued(instance, ["only-team"]) == "projects only-team, index team only"
    # "both" is alice's in two indexes: no guess, the default index.
    assert _issued(instance, ["both"]) == "projects both, the default index only"
    assert _issued(instance, ["both"], "team") == "projects both, index team only"
    # A project that does not exist yet (a CI token for a first upload): the default index.
    assert _issued(instance, ["not-yet"]) == "projects not-yet, the default index only"
    assert _issued(instance, ["only-team", "not-yet"]) == (
        "projects not-yet, only-team, the default index only"
    )
