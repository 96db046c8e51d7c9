"""Storing policies and exemptions: only on virtual indexes, each change audited and
journaled in its transaction, and a refused change writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.policy.conftest import add_project
from tilsit.db.models import AuditEventRow, JournalRow, PolicyExemptionRow, PolicyRow
from tilsit.index.manage import get_index
from tilsit.index.policies import (
    InvalidExemption,
    NotAVirtualIndex,
    UnknownExemption,
    active_exemptions,
    add_exemption,
    get_policy,
    list_exemptions,
    remove_exemption,
    set_policy,
    stored_policy,
)
from tilsit.index.policy import ExemptionFacts
from tilsit.index.policy_doc import PolicyDoc, parse_policy
from tilsit.instance import Instance

DOC = parse_policy('cooldown = { duration = "7 days" }\ndeny = { yanked = true }', "p.toml")
NOW = datetime.now(UTC)


def counts(session: Session) -> tuple[int, int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(PolicyRow)) or 0,
        session.scalar(select(func.count()).select_from(PolicyExemptionRow)) or 0,
        session.scalar(select(func.count()).select_from(AuditEventRow)) or 0,
        session.scalar(select(func.count()).select_from(JournalRow)) or 0,
    )


def last_serial(session: Session) -> int:
    return session.scalar(select(func.max(JournalRow.serial))) or 0


def test_policies_are_for_virtual_indexes(instance: Instance) -> None:
    with instance.db.read() as session:
        before = counts(session)
    with pytest.raises(NotAVirtualIndex) as caught, instance.db.write() as session:
        set_policy(session, get_index(session, "main"), DOC, "", "cli")
    assert caught.value.message == (
        "Index 'main' is a hosted index: policies are for virtual indexes"
    )
    for call in (
        lambda s: get_policy(s, get_index(s, "main")),
        lambda s: add_exemption(
            s, get_index(s, "main"), "demo", None, NOW + timedelta(days=1), "r", "cli"
        ),
        lambda s: remove_exemption(s, get_index(s, "main"), 1, "cli"),
        lambda s: list_exemptions(s, get_index(s, "main"), NOW),
    ):
        with pytest.raises(NotAVirtualIndex), instance.db.write() as session:
            call(session)
    with instance.db.read() as session:
        assert counts(session) == before


def test_set_policy_stores_audits_and_journals(instance: Instance, virtual: str) -> None:
    with instance.db.read() as session:
        index = get_index(session, virtual)
        assert get_policy(session, index) == PolicyDoc()
        assert stored_policy(session, index).version == 0
        serial = last_serial(session)
    with instance.db.write() as session:
        index = get_index(session, virtual)
        assert set_policy(session, index, DOC, "the text", "cli") == 1
    with instance.db.read() as session:
        index = get_index(session, virtual)
        row = session.get_one(PolicyRow, index.id)
        assert row.document == DOC.to_json() and row.source == "the text"
        assert (row.version, row.changed_by) == (1, "cli")
        assert get_policy(session, index) == DOC
        (event,) = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "policy.changed")
        )
        assert event.actor == "cli" and event.index_id == index.id and event.project is None
        assert event.detail == {"index": virtual, "version": 1, "policy": DOC.to_json()}
        (entry,) = session.scalars(select(JournalRow).where(JournalRow.serial > serial))
        assert (entry.index_id, entry.project, entry.action) == (index.id, None, "policy")
        assert entry.detail == {"version": 1}
        assert index.last_serial == entry.serial
        before = counts(session)
    # The same policy again changes nothing; another one is version 2.
    with instance.db.write() as session:
        assert set_policy(session, get_index(session, virtual), DOC, "again", "cli") is None
    with instance.db.read() as session:
        assert counts(session) == before
    with instance.db.write() as session:
        assert set_policy(session, get_index(session, virtual), PolicyDoc(), "", "cli") == 2
    with instance.db.read() as session:
        assert get_policy(session, get_index(session, virtual)) == PolicyDoc()


def test_exemptions_are_audited_journaled_and_expire(instance: Instance, virtual: str) -> None:
    add_project(instance, virtual, "Demo")
    with instance.db.write() as session:
        index = get_index(session, virtual)
        serial = last_serial(session)
        whole = add_exemption(
            session, index, "DEMO", None, NOW + timedelta(days=2), " urgent fix ", "cli", now=NOW
        )
        one = add_exemption(
            session, index, "demo", "1.0", NOW + timedelta(hours=1), "one", "cli", now=NOW
        )
        elsewhere = add_exemption(
            session, index, "not-here", None, NOW + timedelta(days=1), "later", "cli", now=NOW
        )
        ids = (whole.id, one.id, elsewhere.id)
    with instance.db.read() as session:
        index = get_index(session, virtual)
        entries = session.scalars(
            select(JournalRow).where(JournalRow.serial > serial).order_by(JournalRow.serial)
        ).all()
        # The index's own project of that name is re-rendered; a name it does not have
        # yet is journaled without a project, named in the detail.
        assert [(e.action, e.project, e.detail) for e in entries] == [
            ("policy", "demo", {"exemption": ids[0], "project": "demo"}),
            ("policy", "demo", {"exemption": ids[1], "project": "demo"}),
            ("policy", None, {"exemption": ids[2], "project": "not-here"}),
        ]
        events = session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.action == "policy.exemption.added")
            .order_by(AuditEventRow.id)
        ).all()
        assert [(e.project, e.detail["version"], e.detail["reason"]) for e in events] == [
            ("demo", None, "urgent fix"),
            ("demo", "1.0", "one"),
            ("not-here", None, "later"),
        ]
        found = active_exemptions(session, index, "Demo", NOW)
        assert [(e.id, e.version, e.reason) for e in found] == [
            (ids[0], None, "urgent fix"),
            (ids[1], "1.0", "one"),
        ]
        assert isinstance(found[0], ExemptionFacts)
        # Expired ones are no longer active.
        later = active_exemptions(session, index, "demo", NOW + timedelta(hours=1))
        assert [e.id for e in later] == [ids[0]]
        assert [r.id for r in list_exemptions(session, index, NOW)] == list(ids)
    with instance.db.write() as session:
        removed = remove_exemption(session, get_index(session, virtual), ids[0], "cli")
        assert removed.removed_at is not None
    with instance.db.read() as session:
        index = get_index(session, virtual)
        assert [e.id for e in active_exemptions(session, index, "demo", NOW)] == [ids[1]]
        (event,) = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "policy.exemption.removed")
        )
        assert event.project == "demo" and event.detail["id"] == ids[0]
        last = session.scalars(select(JournalRow).order_by(JournalRow.serial.desc())).first()
        assert last is not None and (last.project, last.detail["exemption"]) == ("demo", ids[0])


@pytest.mark.parametrize(
    ("project", "version", "expires", "reason", "message"),
    [
        ("de mo", None, timedelta(days=1), "r", "'de mo' is not a valid project name"),
        ("demo", "x" * 80, timedelta(days=1), "r", "The version is 80 characters long"),
        ("demo", None, timedelta(0), "r", "which is not in the future: give a later time"),
        ("demo", None, -timedelta(days=1), "r", "which is not in the future"),
        ("demo", None, timedelta(days=400), "r", "at most 366 days"),
        ("demo", None, timedelta(days=1), "  ", "An exemption needs a reason"),
    ],
)
def test_bad_exemptions_change_nothing(
    instance: Instance,
    virtual: str,
    project: str,
    version: str | None,
    expires: timedelta,
    reason: str,
    message: str,
) -> None:
    with instance.db.read() as session:
        before = counts(session)
    with pytest.raises(InvalidExemption) as caught, instance.db.write() as session:
        add_exemption(
            session, get_index(session, virtual), project, version, NOW + expires, reason, "cli"
        )
    assert message in caught.value.message
    with instance.db.read() as session:
        assert counts(session) == before


def test_unknown_exemptions(instance: Instance, virtual: str) -> None:
    with instance.db.write() as session:
        other = get_index(session, virtual)
        row = add_exemption(session, other, "demo", None, NOW + timedelta(days=1), "r", "cli")
        exemption = row.id
    with instance.db.write() as session:
        from tilsit.db.models import IndexRow

        session.add(IndexRow(name="two", kind="virtual"))
    for name, number in (("two", exemption), (virtual, exemption + 1)):
        with pytest.raises(UnknownExemption) as caught, instance.db.write() as session:
            remove_exemption(session, get_index(session, name), number, "cli")
        assert caught.value.message == (
            f"Index {name!r} has no exemption {number} (tilsit policy show {name} lists them)"
        )
    with instance.db.write() as session:
        remove_exemption(session, get_index(session, virtual), exemption, "cli")
    with pytest.raises(UnknownExemption), instance.db.write() as session:
        remove_exemption(session, get_index(session, virtual), exemption, "cli")
