"""The review queue's rules: who asks, who decides, what is remembered, what is written."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import AppClient
from tests.private.conftest import basic
from tests.reviews.conftest import counts, user
from tilsit.auth.rights import may_read
from tilsit.auth.tokens import create_token
from tilsit.db.models import AuditEventRow, JournalRow, ProjectRow, ReviewRow
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.index.permissions import InvalidPermission, grant_permission, set_visibility
from tilsit.index.reviews import (
    AlreadyDecided,
    InvalidReview,
    ReviewRejected,
    approve,
    list_reviews,
    queue_for,
    reject,
    request_review,
    review_states,
)
from tilsit.instance import Instance


def _events(instance: Instance) -> list[tuple[str, str, str | None, dict[str, object]]]:
    with instance.db.read() as session:
        return [
            (e.action, e.actor, e.project, e.detail)
            for e in session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.action.like("review.%"))
                .order_by(AuditEventRow.id)
            )
        ]


def _journal(instance: Instance) -> list[tuple[str | None, str, dict[str, object]]]:
    with instance.db.read() as session:
        virtual = get_index(session, "all")
        return [
            (j.project, j.actor, j.detail)
            for j in session.scalars(
                select(JournalRow)
                .where(JournalRow.index_id == virtual.id, JournalRow.action == "review")
                .order_by(JournalRow.serial)
            )
        ]


def test_request_then_approve_is_audited_and_journaled_per_release(stack: Instance) -> None:
    with stack.db.write() as session:
        done = request_review(
            session, get_index(session, "all"), "Requests_Ish", "1.0.0", by=user(session, "dave")
        )
        assert done.created
        # Stored as the owner's release is: its spelling, its key.
        assert (done.review.project, done.review.version, done.review.state) == (
            "requests-ish",
            "1.0",
            "pending",
        )
    with stack.db.write() as session:
        again = request_review(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "ada")
        )
        assert not again.created and again.review.requested_by == "dave"
    with stack.db.read() as session:
        assert [r.state for r in list_reviews(session, get_index(session, "all"), "pending")] == [
            "pending"
        ]
        assert [(i.name, r.version) for i, r in queue_for(session, user(session, "rita"))] == [
            ("all", "1.0")
        ]
        assert queue_for(session, user(session, "dave")) == []
    with stack.db.write() as session:
        row = approve(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "rita")
        )
        assert (row.state, row.decided_by) == ("approved", "rita")
        assert review_states(session, get_index(session, "all"), "requests-ish") == {
            "1": ("approved", "")
        }
        # The virtual index's own row of the name is the journal's project.
        assert session.scalars(
            select(ProjectRow).where(
                ProjectRow.index_id == get_index(session, "all").id,
                ProjectRow.normalized == "requests-ish",
            )
        ).one().last_serial == max(
            session.scalars(select(JournalRow.serial).where(JournalRow.action == "review"))
        )
    with stack.db.write() as session, pytest.raises(AlreadyDecided, match="already approved"):
        request_review(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "dave")
        )
    assert [(a, who, p) for a, who, p, _ in _events(stack)] == [
        ("review.requested", "dave", "requests-ish"),
        ("review.approved", "rita", "requests-ish"),
    ]
    assert _events(stack)[1][3]["member"] == "mir"
    assert _journal(stack) == [
        ("requests-ish", "dave", {"release": "1.0"}),
        ("requests-ish", "rita", {"release": "1.0"}),
    ]
    stack.renderer.catch_up()  # the rows render (what they show is the policy's)


def test_a_rejection_is_remembered_and_is_the_answer_to_asking_again(stack: Instance) -> None:
    with stack.db.write() as session:
        request_review(
            session, get_index(session, "all"), "requests-ish", "2.0", by=user(session, "dave")
        )
    with stack.db.write() as session:
        reject(
            session,
            get_index(session, "all"),
            "requests-ish",
            "2.0",
            reason="  phones home on import  ",
            by=user(session, "rita"),
        )
    before = counts(stack)
    with stack.db.write() as session, pytest.raises(ReviewRejected) as refused:
        # Any spelling of the version is the same release.
        request_review(
            session, get_index(session, "all"), "requests-ish", "2.0.0", by=user(session, "dave")
        )
    assert refused.value.status == 409
    assert refused.value.reason == "phones home on import"
    assert "rejected for 'all' by rita" in refused.value.message
    assert "phones home on import" in refused.value.message
    assert counts(stack) == before
    assert [a for a, *_ in _events(stack)] == ["review.requested", "review.rejected"]
    assert _events(stack)[1][3]["reason"] == "phones home on import"
    # A reviewer may change the decision; it is audited like the first.
    with stack.db.write() as session:
        approve(session, get_index(session, "all"), "requests-ish", "2.0", actor="cli")
    assert _events(stack)[-1][:2] == ("review.approved", "cli")
    assert _events(stack)[-1][3]["before"] == "rejected"


def test_a_rejection_needs_a_reason_and_changes_nothing_without_one(stack: Instance) -> None:
    before = counts(stack)
    for reason in ("", "   "):
        with stack.db.write() as session, pytest.raises(InvalidReview, match="needs a reason"):
            reject(
                session,
                get_index(session, "all"),
                "requests-ish",
                "1.0",
                reason=reason,
                by=user(session, "rita"),
            )
    with stack.db.write() as session, pytest.raises(InvalidReview, match="at most"):
        reject(session, get_index(session, "all"), "requests-ish", "1.0", reason="x" * 2001)
    assert counts(stack) == before


def test_only_reviewers_decide(stack: Instance) -> None:
    with stack.db.write() as session:
        request_review(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "dave")
        )
    before = counts(stack)
    for decide in (approve, reject):
        with stack.db.write() as session, pytest.raises(errors.Forbidden) as refused:
            decide(
                session,
                get_index(session, "all"),
                "requests-ish",
                "1.0",
                reason="looks fine",
                by=user(session, "dave"),
            )
        assert refused.value.status == 403
        assert "tilsit index grant all dave review" in refused.value.message
    # "upload" and "read" are no "review".
    with stack.db.write() as session:
        virtual = get_index(session, "all")
        grant_permission(session, virtual, user(session, "dave"), "read", actor_name="test")
    with stack.db.write() as session, pytest.raises(errors.Forbidden):
        approve(session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "dave"))
    after = counts(stack)
    assert after.reviews == before.reviews
    # An administrator decides without a grant.
    with stack.db.write() as session:
        approve(session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "ada"))


def test_a_private_virtual_index_is_read_by_its_reviewers_and_hidden_from_others(
    stack: Instance, app_client: AppClient
) -> None:
    with stack.db.write() as session:
        set_visibility(session, get_index(session, "all"), private=True, actor_name="test")
        rita_token = create_token(session, user(session, "rita")).secret
        dave_token = create_token(session, user(session, "dave")).secret
    stack.renderer.catch_up()
    with stack.db.read() as session:
        virtual = get_index(session, "all")
        assert may_read(session, user(session, "rita"), virtual)
        assert not may_read(session, user(session, "dave"), virtual)
    page = "/all/simple/requests-ish/"
    assert app_client.get(page, headers=basic(rita_token)).status_code == 200
    assert app_client.get(page, headers=basic(dave_token)).status_code == 403
    before = counts(stack)
    # Whoever may not read it is told what a missing index would say.
    with stack.db.write() as session, pytest.raises(errors.UnknownIndex, match="no index named"):
        request_review(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "dave")
        )
    with stack.db.write() as session, pytest.raises(errors.UnknownIndex):
        approve(session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "dave"))
    assert counts(stack) == before
    with stack.db.write() as session:
        request_review(
            session, get_index(session, "all"), "requests-ish", "1.0", by=user(session, "rita")
        )


def test_reviews_are_for_virtual_indexes(stack: Instance) -> None:
    before = counts(stack)
    for name in ("mir", "internal"):
        with stack.db.write() as session, pytest.raises(InvalidReview, match="virtual index"):
            request_review(session, get_index(session, name), "requests-ish", "1.0")
        with stack.db.write() as session, pytest.raises(InvalidReview, match="virtual index"):
            approve(session, get_index(session, name), "requests-ish", "1.0")
        with stack.db.write() as session, pytest.raises(InvalidPermission, match="virtual"):
            grant_permission(session, get_index(session, name), user(session, "dave"), "review")
    assert counts(stack) == before


def test_unknown_and_hosted_releases_are_refused(stack: Instance) -> None:
    before = counts(stack)
    cases = [
        ("requests-ish", "3.0", errors.UnknownRelease, "has no release '3.0'"),
        ("no-such-thing", "1.0", errors.UnknownProject, "no project 'no-such-thing'"),
        ("not a name!", "1.0", InvalidReview, "not a valid project name"),
        ("requests-ish", "1" * 65, InvalidReview, "at most 64"),
        ("requests-ish", "1.0 ; rm", InvalidReview, "not a version"),
        # A hosted owner's files are shown without a review.
        ("internal-tool", "1.0", InvalidReview, "hosted index 'internal'"),
    ]
    for project, version, error, words in cases:
        for step in (request_review, approve):
            with stack.db.write() as session, pytest.raises(error, match=words) as refused:
                step(session, get_index(session, "all"), project, version, actor="cli")
            assert refused.value.status in (400, 404)
    assert counts(stack) == before


def test_a_release_of_a_name_the_owner_lacks_is_unknown(stack: Instance) -> None:
    """Only the owner's releases count: a name the hosted member owns is not reviewed
    through the mirror's release of it."""
    from tests.reviews.conftest import mirrored
    from tilsit.index.upstream import UpstreamProject, apply_upstream_project

    upstream = mirrored(stack, "internal-tool", "99.0")
    with stack.db.write() as session:
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            UpstreamProject("internal-tool", 9, [upstream], versions=["99.0"]),
            stored=set(stack.blobs),
        )
    with stack.db.write() as session, pytest.raises(errors.UnknownRelease, match="'internal'"):
        request_review(session, get_index(session, "all"), "internal-tool", "99.0")
    with stack.db.read() as session:
        assert session.scalars(select(ReviewRow)).all() == []


def test_a_virtual_member_is_followed_to_the_files_and_journals_its_holders(
    stack: Instance,
) -> None:
    from tilsit.index.journal import MEMBER_CHANGE
    from tilsit.index.manage import create_index
    from tilsit.index.virtual import set_members

    with stack.db.write() as session:
        top = create_index(session, "top", "virtual")
        set_members(session, top, ["all"], actor="test")
    with stack.db.write() as session:
        done = request_review(session, get_index(session, "top"), "requests-ish", "2.0")
        assert done.review.version == "2.0"
    assert _events(stack)[-1][3]["member"] == "mir"
    # A review in "all" reaches the pages of "top", which shows "all"'s project.
    with stack.db.write() as session:
        approve(session, get_index(session, "all"), "requests-ish", "1.0", actor="cli")
    with stack.db.read() as session:
        last = session.scalars(
            select(JournalRow)
            .where(JournalRow.index_id == get_index(session, "top").id)
            .order_by(JournalRow.serial.desc())
            .limit(1)
        ).one()
        assert (last.action, last.project, last.detail) == (
            MEMBER_CHANGE,
            "requests-ish",
            {"member": "all", "release": "1.0"},
        )
