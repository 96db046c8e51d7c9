"""The review pages over HTTP (in-process): asking, the queue, approving and rejecting
under the UI's CSRF token and CSP."""

from __future__ import annotations

import re

from tests.admin.signin import sign_in
from tests.conftest import AppClient
from tests.reviews.conftest import counts
from tilsit.index.manage import get_index
from tilsit.index.permissions import set_visibility
from tilsit.instance import Instance
from tilsit.web.ui.context import CSP

ASK = "/account/reviews/request"


def _review_id(html: str, release: str) -> str:
    found = re.search(
        r'action="/account/reviews/(\d+)/approve"[^>]*>\s*<input[^>]*>\s*'
        rf"<button[^>]*>Approve {re.escape(release)}<",
        html,
    )
    assert found, html
    return found[1]


def test_ask_then_approve_and_reject_on_the_web(stack: Instance, app_client: AppClient) -> None:
    dave = sign_in(stack.settings.db_url, app_client, "dave")
    rita = sign_in(stack.settings.db_url, app_client, "rita")

    listing = dave.get(f"{ASK}?index=all&project=Requests_Ish")
    assert listing.status_code == 200
    assert listing.headers["content-security-policy"] == CSP
    assert "Its files come from index mir (mirror)" in listing.text
    assert listing.text.count("not reviewed") == 2
    assert "Request review of 2.0" in listing.text

    asked = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "1.0"})
    assert asked.status_code == 200, asked.text
    assert "Review of requests-ish 1.0 in all requested" in asked.text
    asked = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "2.0"})
    assert asked.status_code == 200

    # Nobody's queue but a reviewer's shows the requests.
    assert "You review no index" in dave.get("/account/reviews").text
    queue = rita.get("/account/reviews")
    assert queue.headers["content-security-policy"] == CSP
    assert "You review all" in queue.text
    one, two = (
        _review_id(queue.text, "requests-ish 1.0"),
        _review_id(queue.text, "requests-ish 2.0"),
    )

    before = counts(stack)
    # dave may read "all" but not review it.
    refused = dave.post(f"/account/reviews/{one}/approve", {})
    assert refused.status_code == 403 and "may not review" in refused.text
    # No CSRF token, or a forged one: refused before anything happens.
    assert rita.post(f"/account/reviews/{one}/approve", {}, csrf=None).status_code == 403
    assert rita.post(f"/account/reviews/{one}/approve", {}, csrf="forged").status_code == 403
    # A rejection needs its reason.
    empty = rita.post(f"/account/reviews/{two}/reject", {"reason": "  "})
    assert empty.status_code == 400 and "needs a reason" in empty.text
    assert rita.post("/account/reviews/99999/approve", {}).status_code == 404
    assert counts(stack) == before

    approved = rita.post(f"/account/reviews/{one}/approve", {})
    assert approved.status_code == 200 and "Approved requests-ish 1.0 for all." in approved.text
    rejected = rita.post(f"/account/reviews/{two}/reject", {"reason": "pulls in a miner"})
    assert "Rejected requests-ish 2.0 for all: pulls in a miner" in rejected.text
    assert "No requests are waiting for you." in rejected.text

    # Whoever asks again is told the reason, on the listing and in answer to the form.
    listing = dave.get(f"{ASK}?index=all&project=requests-ish")
    assert "rejected: pulls in a miner" in listing.text
    again = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "2.0"})
    assert again.status_code == 409
    assert "rejected for &#39;all&#39; by rita" in again.text and "pulls in a miner" in again.text
    again = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "1.0"})
    assert again.status_code == 409 and "already approved" in again.text


def test_the_pages_refuse_what_the_domain_refuses(stack: Instance, app_client: AppClient) -> None:
    dave = sign_in(stack.settings.db_url, app_client, "dave")
    ada = sign_in(stack.settings.db_url, app_client, "ada", admin=True)
    before = counts(stack)
    hosted = dave.post(ASK, {"index": "all", "project": "internal-tool", "version": "1.0"})
    assert hosted.status_code == 400 and "hosted index" in hosted.text
    missing = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "7.0"})
    assert missing.status_code == 404 and "no release" in missing.text
    mirror = dave.post(ASK, {"index": "mir", "project": "requests-ish", "version": "1.0"})
    assert mirror.status_code == 400 and "reviews are for virtual indexes" in mirror.text
    # The hosted owner's releases are listed as shown without a review, with no button.
    listing = dave.get(f"{ASK}?index=all&project=internal-tool")
    assert "shown without a review (hosted)" in listing.text
    assert "Request review of" not in listing.text
    assert counts(stack) == before
    # A private virtual index is, to whoever may not read it, an index that does not exist.
    with stack.db.write() as session:
        set_visibility(session, get_index(session, "all"), private=True, actor_name="test")
    stack.renderer.catch_up()
    before = counts(stack)
    hidden = dave.post(ASK, {"index": "all", "project": "requests-ish", "version": "1.0"})
    assert hidden.status_code == 404 and "no index named" in hidden.text
    assert "There is no virtual index you may read" in dave.get(ASK).text
    assert counts(stack) == before
    # An administrator reviews every virtual index without a grant.
    assert (
        ada.post(ASK, {"index": "all", "project": "requests-ish", "version": "1.0"}).status_code
        == 200
    )
    assert "requests-ish 1.0" in ada.get("/account/reviews").text


def test_logged_out_visitors_are_sent_to_log_in(app_client: AppClient) -> None:
    for path in ("/account/reviews", ASK):
        response = app_client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/account/login?next=")
