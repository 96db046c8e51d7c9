"""Yank, unyank and delete on a project's page: Owners do all, Maintainers yank only; each
change goes through the CLI's domain functions, is audited and shows on the simple page."""

from __future__ import annotations

import html
import json

from sqlalchemy import select

from tests.admin.signin import Visitor, sign_in
from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.db.models import AuditEventRow, FileRow, ReleaseRow, UserRow
from tilsit.index.manage import create_user
from tilsit.instance import Instance

MANAGE = "/project/main/shipped/"
_JSON = {"accept": "application/vnd.pypi.simple.v1+json"}


def _publish(settings: Settings, instance: Instance, client: AppClient) -> None:
    """owner uploads shipped 1.0 (wheel and sdist) and 2.0; maint is a Maintainer."""
    with instance.db.write() as session:
        owner = create_user(session, "owner")
        create_user(session, "maint")
        token = create_token(session, owner).secret
    for dist in (
        make_wheel("shipped", "1.0"),
        make_sdist("shipped", "1.0"),
        make_wheel("shipped", "2.0"),
    ):
        assert upload(client, dist, token).status_code == 200
    run_cli(settings, "role", "add", "shipped", "maint", "Maintainer")


def _files(client: AppClient) -> dict[str, object]:
    page = json.loads(client.get("/main/simple/shipped/", headers=_JSON).text)
    return {f["filename"]: f.get("yanked", False) for f in page["files"]}


def _events(instance: Instance, action: str) -> list[AuditEventRow]:
    with instance.db.read() as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.action == action)))


def _post(visitor: Visitor, action: str, **data: str) -> tuple[int, str]:
    response = visitor.post(f"{MANAGE}{action}", data)
    return response.status_code, html.unescape(response.text)


def test_owner_yanks_with_a_reason_unyanks_and_deletes(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    _publish(settings, instance, client)
    owner = sign_in(settings.db_url, client, "owner")
    page = owner.get(MANAGE).text
    assert "Yank 1.0" in page and "Delete release 2.0" in page and "Delete file" in page

    status, text = _post(owner, "yank", version="1.0", reason="broken on 3.13")
    assert status == 200 and "shipped 1.0 is yanked" in text, text
    assert _files(client)["shipped-1.0-py3-none-any.whl"] == "broken on 3.13"
    assert "Unyank 1.0" in text and "Yanked: broken on 3.13" in text
    status, text = _post(owner, "unyank", version="1.0")
    assert status == 200 and _files(client)["shipped-1.0-py3-none-any.whl"] is False

    # A delete needs the version (or file name) typed: otherwise nothing happens.
    status, text = _post(owner, "delete-release", version="2.0", confirm="2")
    assert status == 400 and "type its version exactly" in text
    assert "shipped-2.0-py3-none-any.whl" in _files(client)
    status, text = _post(owner, "delete-release", version="2.0", confirm="2.0")
    assert status == 200 and "Release shipped 2.0 and its files are deleted" in text, text
    assert "shipped-2.0-py3-none-any.whl" not in _files(client)

    status, text = _post(
        owner, "delete-file", filename="shipped-1.0.tar.gz", confirm="shipped-1.0.tar"
    )
    assert status == 400 and "nothing was deleted" in text
    status, text = _post(
        owner, "delete-file", filename="shipped-1.0.tar.gz", confirm="shipped-1.0.tar.gz"
    )
    assert status == 200, text
    assert set(_files(client)) == {"shipped-1.0-py3-none-any.whl"}
    # The same audit events as the CLI's, with the user and the address.
    (yank,) = _events(instance, "yank")
    assert (yank.actor, yank.ip, yank.detail["reason"]) == ("owner", "127.0.0.1", "broken on 3.13")
    assert [e.detail["what"] for e in _events(instance, "delete")] == ["release", "file"]
    assert {e.actor for e in _events(instance, "delete")} == {"owner"}
    # A deleted filename stays gone for good.
    with instance.db.write() as session:
        token = create_token(
            session, session.scalars(select(UserRow).where(UserRow.name == "owner")).one()
        ).secret
    reused = upload(client, make_wheel("shipped", "2.0"), token)
    assert reused.status_code == 400 and "already been used" in reused.text


def test_a_maintainer_may_yank_but_not_delete(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    _publish(settings, instance, client)
    maint = sign_in(settings.db_url, client, "maint")
    page = maint.get(MANAGE).text
    assert "Yank 2.0" in page and "Delete release" not in page and "Delete file" not in page
    assert _post(maint, "yank", version="2.0", reason="")[0] == 200
    for action, data in (
        ("delete-release", {"version": "1.0", "confirm": "1.0"}),
        ("delete-file", {"filename": "shipped-1.0.tar.gz", "confirm": "shipped-1.0.tar.gz"}),
    ):
        status, text = _post(maint, action, **data)
        assert status == 403 and "Only an Owner of 'shipped' may delete" in text, text
    with instance.db.read() as session:
        assert session.scalars(select(FileRow).where(FileRow.deleted_at.is_not(None))).all() == []
        release = session.scalars(select(ReleaseRow).where(ReleaseRow.version == "2.0")).one()
        assert release.yanked


def test_strangers_and_forged_forms_change_nothing(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    _publish(settings, instance, client)
    stranger = sign_in(settings.db_url, client, "stranger")
    status, _ = _post(stranger, "yank", version="1.0", reason="mine now")
    assert status == 403
    owner = sign_in(settings.db_url, client, "owner")
    # Without the session's CSRF token, refused before anything runs.
    forged = owner.post(f"{MANAGE}delete-release", {"version": "1.0", "confirm": "1.0"}, csrf=None)
    assert forged.status_code == 403
    # A file of another project cannot be deleted through this one's page.
    with instance.db.write() as session:
        other = create_token(
            session, session.scalars(select(UserRow).where(UserRow.name == "owner")).one()
        ).secret
    assert upload(client, make_wheel("elsewhere", "1.0"), other).status_code == 200
    name = "elsewhere-1.0-py3-none-any.whl"
    status, text = _post(owner, "delete-file", filename=name, confirm=name)
    assert status == 404 and "shipped has no file" in text
    # An over-long reason is refused with its length.
    status, text = _post(owner, "yank", version="1.0", reason="x" * 1001)
    assert status == 400 and "at most 1000" in text
    assert _events(instance, "yank") == [] and _events(instance, "delete") == []
    assert all(not yanked for yanked in _files(client).values())
