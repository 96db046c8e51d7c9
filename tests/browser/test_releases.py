"""Yanking and deleting releases on the project page, in Chromium: an Owner types a reason to
yank, and the version to delete; installers see both on the simple page."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.browser.conftest import MakeUser, login
from tests.builders import make_wheel
from tests.conftest import LiveServer
from tests.uploads import upload

PASSWORD = "correct horse battery staple 42"


def _files(server: LiveServer) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/main/simple/yanker/",
        headers={"accept": "application/vnd.pypi.simple.v1+json"},
        timeout=30,
    )
    return {f["filename"]: f.get("yanked", False) for f in json.loads(response.text)["files"]}


def test_owner_yanks_and_deletes_a_release_in_the_browser(
    mail_server: LiveServer, page: Any, make_user: MakeUser
) -> None:
    make_user("yves", PASSWORD)
    token = mail_server.token("yves")
    with httpx.Client(base_url=mail_server.url, timeout=60) as client:
        for version in ("1.0", "2.0"):
            assert upload(client, make_wheel("yanker", version), token).status_code == 200

    login(page, mail_server.url, "yves", PASSWORD)
    page.goto(f"{mail_server.url}/project/main/yanker/")
    page.get_by_label("Reason for yanking 1.0 (shown to installers)").fill("crashes on import")
    page.get_by_role("button", name="Yank 1.0").click()
    page.wait_for_load_state()
    assert "yanker 1.0 is yanked" in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Unyank 1.0").is_visible()
    assert _files(mail_server)["yanker-1.0-py3-none-any.whl"] == "crashes on import"

    # The field must be filled (the browser checks), and with the version itself.
    page.get_by_label("Type 2.0 to delete release 2.0 and its files").fill("2")
    page.get_by_role("button", name="Delete release 2.0").click()
    page.wait_for_load_state()
    assert "type its version exactly" in page.get_by_role("alert").inner_text()
    assert "yanker-2.0-py3-none-any.whl" in _files(mail_server)

    page.get_by_label("Type 2.0 to delete release 2.0 and its files").fill("2.0")
    page.get_by_role("button", name="Delete release 2.0").click()
    page.wait_for_load_state()
    assert "Release yanker 2.0 and its files are deleted" in page.get_by_role("status").inner_text()
    assert set(_files(mail_server)) == {"yanker-1.0-py3-none-any.whl"}
    assert not page.get_by_role("button", name="Delete release 2.0").count()
