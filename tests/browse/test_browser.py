"""The project pages in Chromium: project → version, a copy button, the yanked badge,
screenshots at 1,280 and 375 px, and no sideways scrolling on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browse.conftest import PASSWORD, create_account, twine, wheel
from tests.browse.test_pages import EXTRA, MARKDOWN
from tests.conftest import LiveServer
from tests.screenshots import SCREEN_WIDTHS, shoot

LONG = (
    MARKDOWN + "\n```\n" + "x" * 400 + "\n```\n\n| a | b |\n|---|---|\n| " + "y" * 300 + " | z |\n"
)


def test_browse_project_to_version_copy_a_command_and_fit_a_phone(
    mail_server: LiveServer, chromium: Any, tmp_path: Path
) -> None:
    server = mail_server
    create_account(server.settings, "alice", PASSWORD)  # a confirmed address, to upload
    token = server.token("alice")
    twine(
        server,
        token,
        tmp_path / "d",
        wheel("gizmo-with-a-long-name", "1.0", LONG, "text/markdown", extra=EXTRA),
        wheel("gizmo-with-a-long-name", "1.1", LONG, "text/markdown", extra=EXTRA),
    )
    server.cli(
        "yank", "gizmo-with-a-long-name", "1.0", "--index", "main", "--reason", "a broken build"
    )
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{server.url}/main/project/gizmo-with-a-long-name/")
        assert page.locator(".project-head h1").inner_text().startswith("gizmo")
        page.get_by_role("link", name="1.0", exact=True).click()
        page.wait_for_url("**/gizmo-with-a-long-name/1.0/")
        assert page.locator(".project-head .badge-bad").inner_text() == "Yanked: a broken build"
        button = page.get_by_role("button", name="Copy the pip command")
        assert button.is_visible()
        button.click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == (
            f"pip install --index-url {server.url}/main/simple/ gizmo-with-a-long-name==1.0"
        )
        page.wait_for_function("document.querySelector('[data-copy-status]').textContent !== ''")

        for width in SCREEN_WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for path, name in (
                ("/main/project/gizmo-with-a-long-name/", "project"),
                ("/main/project/gizmo-with-a-long-name/1.0/", "release"),
            ):
                page.goto(f"{server.url}{path}")
                shoot(page, f"browse-{name}")
                overflow = page.evaluate("document.documentElement.scrollWidth")
                assert overflow <= width, (name, width, overflow)
    finally:
        context.close()
