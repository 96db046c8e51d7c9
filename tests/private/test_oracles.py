"""No page tells an existing project from a missing one in a private index the caller may
not read: the project's manage page, its actions, its publishers page answer 404 in the
words of a missing project. A reader of the index (or a member of the project) is told the
real reason."""

from __future__ import annotations

import pytest

from tests.private.conftest import Private
from tests.private.test_roles import Browser

PUBLISHER = {
    "action": "add",
    "kind": "github",
    "repository": "octo/secret-tool",
    "workflow": "release.yml",
}


def _same(existing: str, missing: str) -> str:
    """The body of ``existing``'s answer with the project's name replaced by ``missing``."""
    return existing.replace("secret-tool", missing)


def _requests(browser: Browser, name: str) -> list[tuple[str, int, str]]:
    base = f"/project/sec/{name}/"
    answers = [
        browser.get(base),
        browser.get(f"{base}publishers"),
        browser.post(f"{base}publishers", PUBLISHER),
        browser.post(f"{base}invite", {"user": "mallory", "role": "Owner"}),
        browser.post(f"{base}change", {"user": "alice", "role": "Maintainer"}),
        browser.post(f"{base}remove", {"user": "alice"}),
        browser.post(f"{base}revoke", {"invitation": "1"}),
    ]
    return [(str(r.request.url.path), r.status_code, r.text) for r in answers]


@pytest.fixture
def mallory(private: Private) -> Browser:
    private.user("mallory")
    return Browser(private.http, private.instance, "mallory")


def test_a_stranger_cannot_tell_a_project_from_a_missing_one(
    private: Private, mallory: Browser
) -> None:
    existing = _requests(mallory, "secret-tool")
    missing = _requests(mallory, "no-such-tool")
    for (path, status, body), (_, missing_status, missing_body) in zip(
        existing, missing, strict=True
    ):
        assert status == missing_status == 404, (path, status, missing_status, body[:300])
        assert _same(body, "no-such-tool") == missing_body, path


def test_a_member_or_reader_is_told_the_real_reason(private: Private, mallory: Browser) -> None:
    alice = Browser(private.http, private.instance, "alice")
    assert alice.get("/project/sec/secret-tool/").status_code == 200
    assert alice.get("/project/sec/secret-tool/publishers").status_code == 200
    # A reader of the whole index learns the project exists; it is not theirs to manage.
    private.grant("mallory", "read")
    page = mallory.get("/project/sec/secret-tool/")
    assert page.status_code == 403 and "no role" in page.text
    publishers = mallory.get("/project/sec/secret-tool/publishers")
    assert publishers.status_code == 403 and "Only an Owner" in publishers.text
    assert mallory.get("/project/sec/no-such-tool/").status_code == 404


def test_a_public_index_keeps_its_answers(private: Private, mallory: Browser) -> None:
    private.set_private("sec", False)
    assert mallory.get("/project/sec/secret-tool/").status_code == 403
    assert mallory.get("/project/sec/no-such-tool/").status_code == 404
