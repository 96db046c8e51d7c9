"""The review queue end to end in Chromium: a developer asks, a reviewer approves one
release and rejects another with a reason, and the developer who asks again is shown it.

Screenshots of each step are kept with the test's files (``tmp_path/screens``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.browser.conftest import MakeUser, login
from tests.conftest import LiveServer
from tilsit.db.models import AuditEventRow, ReviewRow
from tilsit.instance import Instance
from tilsit.web.ui.context import CSP

PASSWORD = "correct horse battery staple 42"


def _states(instance: Instance) -> dict[str, tuple[str, str]]:
    with instance.db.read() as session:
        return {
            r.version: (r.state, r.reason)
            for r in session.scalars(select(ReviewRow).order_by(ReviewRow.id))
        }


def test_ask_review_and_answer_in_chromium(
    stack: Instance, mail_server: LiveServer, page: Any, make_user: MakeUser, tmp_path: Path
) -> None:
    screens = tmp_path / "screens"
    screens.mkdir()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    url = mail_server.url
    make_user("dave", PASSWORD)
    make_user("rita", PASSWORD)

    # dave, who may read "all", finds the release and asks for a review.
    login(page, url, "dave", PASSWORD)
    page.get_by_role("link", name="Reviews").click()
    page.get_by_role("link", name="Ask for a review of a release").click()
    page.wait_for_load_state()
    page.get_by_label("Virtual index").first.select_option("all")
    page.get_by_label("Project", exact=True).fill("Requests.Ish")
    page.get_by_role("button", name="Show releases").click()
    page.wait_for_load_state()
    assert "Its files come from index mir" in page.get_by_role("main").inner_text()
    for version in ("1.0", "2.0"):
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name=f"Request review of {version}").click()
        response = navigation.value
        assert response.status == 200
        assert response.headers["content-security-policy"] == CSP
        assert "requested: a reviewer will decide" in page.get_by_role("status").inner_text()
        page.goto(f"{url}/account/reviews/request?index=all&project=requests-ish")
    assert page.locator("tr[data-version='2.0'] td.state").inner_text() == "pending"
    page.screenshot(path=str(screens / "1-requested.png"), full_page=True)
    assert _states(stack) == {"1.0": ("pending", ""), "2.0": ("pending", "")}

    # rita, a reviewer of "all", approves one and rejects the other with a reason.
    reviewer = page.context.browser.new_context()
    reviewer.set_default_timeout(20_000)
    tab = reviewer.new_page()
    login(tab, url, "rita", PASSWORD)
    tab.get_by_role("link", name="Reviews").click()
    tab.wait_for_load_state()
    assert tab.get_by_role("heading", name="Review queue").is_visible()
    tab.screenshot(path=str(screens / "2-queue.png"), full_page=True)
    tab.get_by_role("button", name="Approve requests-ish 1.0").click()
    tab.wait_for_load_state()
    assert "Approved requests-ish 1.0 for all." in tab.get_by_role("status").inner_text()
    # The reason is required: the browser does not send the form without it.
    tab.get_by_role("button", name="Reject requests-ish 2.0").click()
    assert tab.get_by_role("button", name="Reject requests-ish 2.0").is_visible()
    assert _states(stack)["2.0"] == ("pending", "")
    tab.get_by_label("Reason for rejecting requests-ish 2.0").fill("bundles a crypto miner")
    tab.get_by_role("button", name="Reject requests-ish 2.0").click()
    tab.wait_for_load_state()
    assert "bundles a crypto miner" in tab.get_by_role("status").inner_text()
    assert "No requests are waiting for you." in tab.get_by_role("main").inner_text()
    tab.screenshot(path=str(screens / "3-decided.png"), full_page=True)
    reviewer.close()
    assert _states(stack) == {
        "1.0": ("approved", ""),
        "2.0": ("rejected", "bundles a crypto miner"),
    }

    # dave asks again: the rejection and its reason are the answer.
    page.goto(f"{url}/account/reviews/request?index=all&project=requests-ish")
    assert (
        "rejected: bundles a crypto miner"
        in page.locator("tr[data-version='2.0'] td.state").inner_text()
    )
    page.get_by_label("Version").fill("2.0.0")
    page.get_by_role("button", name="Request review", exact=True).click()
    page.wait_for_load_state()
    alert = page.get_by_role("alert").inner_text()
    assert "was rejected for 'all' by rita" in alert and "bundles a crypto miner" in alert
    page.screenshot(path=str(screens / "4-asked-again.png"), full_page=True)

    assert violations == []
    with stack.db.read() as session:
        actions = list(
            session.scalars(
                select(AuditEventRow.actor + " " + AuditEventRow.action)
                .where(AuditEventRow.action.like("review.%"))
                .order_by(AuditEventRow.id)
            )
        )
    assert actions == [
        "dave review.requested",
        "dave review.requested",
        "rita review.approved",
        "rita review.rejected",
    ]
    assert sorted(p.name for p in screens.iterdir()) == [
        "1-requested.png",
        "2-queue.png",
        "3-decided.png",
        "4-asked-again.png",
    ]
