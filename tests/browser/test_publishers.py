"""Adding and removing trusted publishers through the pages, in Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy

from tests.browser.conftest import MakeUser, login
from tests.builders import make_wheel
from tests.conftest import LiveServer
from tests.uploads import upload
from tilsit.db.engine import Database
from tilsit.db.models import PublisherRow

PASSWORD = "correct horse battery staple 42"


def _publishers(server: LiveServer) -> list[PublisherRow]:
    db = Database(server.settings.db_url)
    try:
        with db.read() as session:
            return list(session.scalars(sqlalchemy.select(PublisherRow).order_by(PublisherRow.id)))
    finally:
        db.dispose()


def test_owner_adds_and_removes_a_github_publisher(
    mail_server: LiveServer, page: Any, make_user: MakeUser
) -> None:
    make_user("olive", PASSWORD)
    make_user("stranger", PASSWORD)
    with httpx.Client(base_url=mail_server.url) as client:
        assert (
            upload(client, make_wheel("browser-pkg", "1.0"), mail_server.token("olive")).status_code
            == 200
        )

    login(page, mail_server.url, "olive", PASSWORD)
    page.goto(f"{mail_server.url}/project/main/browser-pkg/publishers")
    assert page.get_by_role("heading", name="Trusted publishers of browser_pkg").is_visible(), (
        page.content()
    )
    page.get_by_label("Repository (owner/name)").fill("octo-org/octo-repo")
    page.get_by_label("Workflow file name").fill("release.yml")
    page.get_by_label("Environment (optional, recommended)").first.fill("pypi")
    page.get_by_role("button", name="Add GitHub publisher").click()
    page.wait_for_load_state()
    status = page.get_by_role("status")
    assert "Added publisher: GitHub octo-org/octo-repo, workflow release.yml" in status.inner_text()
    row = page.get_by_role("row").filter(has_text="octo-org/octo-repo")
    assert "environment pypi" in row.inner_text()
    [stored] = _publishers(mail_server)
    assert stored.kind == "github" and stored.claims["environment"] == "pypi"
    assert stored.removed_at is None

    # A bad form changes nothing and says why.
    page.get_by_label("Repository (owner/name)").fill("not a repository")
    page.get_by_label("Workflow file name").fill("release.yml")
    page.get_by_role("button", name="Add GitHub publisher").click()
    page.wait_for_load_state()
    assert "is not of the form owner/repository" in page.get_by_role("alert").inner_text()
    assert len(_publishers(mail_server)) == 1

    page.get_by_role("button", name="Remove").click()
    page.wait_for_load_state()
    assert "Removed publisher" in page.get_by_role("status").inner_text()
    assert "This project has no trusted publishers." in page.content()
    assert _publishers(mail_server)[0].removed_at is not None

    # Someone without the Owner role is refused.
    other = page.context.browser.new_context()
    try:
        stranger_page = other.new_page()
        login(stranger_page, mail_server.url, "stranger", PASSWORD)
        response = stranger_page.goto(f"{mail_server.url}/project/main/browser-pkg/publishers")
        assert response is not None and response.status == 403
    finally:
        other.close()


def test_user_adds_a_pending_publisher(
    mail_server: LiveServer, page: Any, make_user: MakeUser
) -> None:
    make_user("penny", PASSWORD)
    login(page, mail_server.url, "penny", PASSWORD)
    page.goto(f"{mail_server.url}/account/publishing")
    section = page.get_by_role("region", name="Other OIDC issuer (Gitea, Forgejo, Buildkite, …)")
    section.get_by_label("Project name (must not exist yet)").fill("Future_Pkg")
    section.get_by_label("Issuer URL (https)").fill("https://forgejo.example.org/api/actions")
    section.get_by_label("Claims the token must carry").fill(
        "sub=repo:team/future:ref:refs/tags/v1"
    )
    section.get_by_role("button", name="Add OIDC publisher").click()
    page.wait_for_load_state()
    assert "Added a pending publisher for future-pkg" in page.get_by_role("status").inner_text()
    [stored] = _publishers(mail_server)
    assert stored.pending_name == "future-pkg" and stored.project_id is None
    assert stored.claims == {"sub": "repo:team/future:ref:refs/tags/v1"}
