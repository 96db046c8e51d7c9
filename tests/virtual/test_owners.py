"""One owner per name: a virtual index's pages list one member's files, never a merge.

In-process: a hosted index ``internal`` and a mirror ``mir`` whose projects are
applied as a sync applies them, under a virtual index ``all`` = internal, mir.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.virtual.conftest import apply, filenames, mirrored, page, post
from tilsit.db.models import AuditEventRow, JournalRow, VirtualMemberRow
from tilsit.index import errors
from tilsit.index.manage import create_index, delete_index, delete_project, get_index
from tilsit.index.permissions import set_visibility
from tilsit.index.virtual import InvalidMembers, reserve, set_members, set_route
from tilsit.instance import Instance


def test_the_hosted_name_wins_and_versions_are_never_merged(
    stack: Instance, client: AppClient, token: str
) -> None:
    internal = make_wheel("acme-widgets", "1.2.0")
    post(client, token, internal)
    _, higher = mirrored(stack, "acme-widgets", "99.0")
    _, other = mirrored(stack, "requests-ish", "1.0")
    apply(stack, "acme-widgets", 5, higher)
    apply(stack, "requests-ish", 6, other)

    doc = page(stack, "all", "acme-widgets")
    assert filenames(doc) == [internal.filename]
    assert doc is not None and doc["versions"] == ["1.2.0"]
    assert filenames(page(stack, "all", "requests-ish")) == [other.filename]
    # Linked under the virtual index's own root, for every reader of it.
    tree = stack.settings.tree_dir
    assert list((tree / "all" / "packages").rglob(internal.filename))
    legacy = json.loads((tree / "all/pypi/acme-widgets/json").read_bytes())
    assert set(legacy["releases"]) == {"1.2.0"}
    listing = json.loads((tree / "all/simple/index.v1.json").read_bytes())
    assert sorted(p["name"] for p in listing["projects"]) == ["acme-widgets", "requests-ish"]


def test_a_member_change_rerenders_that_project_only(
    stack: Instance, client: AppClient, token: str
) -> None:
    _, one = mirrored(stack, "quiet", "1.0")
    apply(stack, "quiet", 3, one)
    post(client, token, make_wheel("busy", "1.0"))
    quiet = stack.settings.tree_dir / "all/simple/quiet/index.v1.json"
    before = quiet.stat().st_mtime_ns, quiet.stat().st_ino
    with stack.db.read() as session:
        last = session.scalar(select(func.max(JournalRow.serial)))
    post(client, token, make_wheel("busy", "1.1"))
    with stack.db.read() as session:
        rows = session.execute(
            select(
                JournalRow.index_id, JournalRow.action, JournalRow.project, JournalRow.detail
            ).where(JournalRow.serial > last)
        ).all()
        virtual_id = get_index(session, "all").id
    ours = [r for r in rows if r.index_id == virtual_id]
    assert [(r.action, r.project, r.detail.get("release")) for r in ours] == [
        ("member change", "busy", "1.1")
    ]
    assert (quiet.stat().st_mtime_ns, quiet.stat().st_ino) == before
    assert sorted(filenames(page(stack, "all", "busy"))) == sorted(
        [make_wheel("busy", "1.0").filename, make_wheel("busy", "1.1").filename]
    )


def test_a_name_another_member_owns_journals_nothing_in_the_virtual_index(
    stack: Instance, client: AppClient, token: str
) -> None:
    post(client, token, make_wheel("acme-widgets", "1.2.0"))
    with stack.db.read() as session:
        before = get_index(session, "all").last_serial
    _, higher = mirrored(stack, "acme-widgets", "99.0")
    apply(stack, "acme-widgets", 9, higher)
    with stack.db.read() as session:
        assert get_index(session, "all").last_serial == before


def test_a_route_moves_the_name_and_its_files(
    stack: Instance, client: AppClient, token: str
) -> None:
    internal = make_wheel("shared", "1.0")
    post(client, token, internal)
    _, public = mirrored(stack, "shared", "2.0")
    apply(stack, "shared", 4, public)
    assert filenames(page(stack, "all", "shared")) == [internal.filename]
    with stack.db.write() as session:
        set_route(
            session, get_index(session, "all"), "shared", "mir", reason="use upstream", actor="t"
        )
    stack.renderer.catch_up()
    assert filenames(page(stack, "all", "shared")) == [public.filename]
    tree = stack.settings.tree_dir
    assert not list((tree / "all" / "packages").rglob(internal.filename))  # its link is gone
    with stack.db.read() as session:
        events = session.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action == "virtual.route.set")
        ).all()
    assert events == ["virtual.route.set"]


def test_a_reserved_name_is_never_supplied_by_another_member(stack: Instance) -> None:
    _, squat = mirrored(stack, "acme-gadgets", "1.0")
    apply(stack, "acme-gadgets", 3, squat)
    assert page(stack, "all", "acme-gadgets") is not None
    with stack.db.write() as session:
        reserve(session, get_index(session, "internal"), "acme-*", actor="t")
    stack.renderer.catch_up()
    assert page(stack, "all", "acme-gadgets") is None
    listing = json.loads((stack.settings.tree_dir / "all/simple/index.v1.json").read_bytes())
    assert "acme-gadgets" not in [p["name"] for p in listing["projects"]]
    # A name the upstream publishes later is never listed either.
    _, later = mirrored(stack, "acme-later", "1.0")
    apply(stack, "acme-later", 4, later)
    assert page(stack, "all", "acme-later") is None


def test_a_look_alike_of_a_hosted_name_is_hidden(
    stack: Instance, client: AppClient, token: str
) -> None:
    _, squat = mirrored(stack, "acme-w1dgets", "1.0")
    apply(stack, "acme-w1dgets", 3, squat)
    assert page(stack, "all", "acme-w1dgets") is not None  # nothing internal looks like it yet
    post(client, token, make_wheel("acme-widgets", "1.0"))
    assert page(stack, "all", "acme-w1dgets") is None  # hidden once the hosted name exists
    assert page(stack, "all", "acme-widgets") is not None


def test_a_deleted_hosted_project_keeps_its_name(
    stack: Instance, client: AppClient, token: str
) -> None:
    post(client, token, make_wheel("inside", "1.0"))
    _, public = mirrored(stack, "inside", "5.0")
    apply(stack, "inside", 3, public)
    with stack.db.write() as session:
        delete_project(session, get_index(session, "internal"), "inside", actor="t")
    stack.renderer.catch_up()
    assert page(stack, "all", "inside") is None


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (["nope"], "There is no index named 'nope'"),
        (["internal", "internal"], "'internal' is listed twice"),
        (["all"], "cannot be a member of itself"),
        ([], "needs at least one index"),
    ],
)
def test_bad_members_change_nothing(stack: Instance, members: list[str], message: str) -> None:
    with stack.db.read() as session:
        before = session.scalars(select(VirtualMemberRow.member_index_id)).all()
    with pytest.raises(InvalidMembers, match=message), stack.db.write() as session:
        set_members(session, get_index(session, "all"), members)
    with stack.db.read() as session:
        assert session.scalars(select(VirtualMemberRow.member_index_id)).all() == before


def test_a_cycle_is_refused(stack: Instance) -> None:
    with stack.db.write() as session:
        outer = create_index(session, "outer", "virtual")
        set_members(session, outer, ["all"])
    with (
        pytest.raises(InvalidMembers, match="would make a cycle: all -> outer -> all"),
        stack.db.write() as session,
    ):
        set_members(session, get_index(session, "all"), ["internal", "outer"])


def test_a_private_member_in_a_public_virtual_index_needs_the_operator(stack: Instance) -> None:
    with stack.db.write() as session:
        secret = create_index(session, "secret")
        set_visibility(session, secret, private=True)
    with (
        pytest.raises(errors.Forbidden, match="'secret' is private and 'all' is public"),
        stack.db.write() as session,
    ):
        set_members(session, get_index(session, "all"), ["internal", "secret"])
    with stack.db.write() as session:
        changed = set_members(
            session, get_index(session, "all"), ["internal", "secret"], expose_private=True
        )
        assert changed.exposed == ["secret"]
    # Making a member of a public virtual index private is the same exposure.
    with (
        pytest.raises(errors.Forbidden, match="member of public virtual index 'all'"),
        stack.db.write() as session,
    ):
        set_visibility(session, get_index(session, "internal"), private=True)


def test_a_member_cannot_be_deleted(stack: Instance) -> None:
    with (
        pytest.raises(errors.InvalidUpload, match="member of virtual index 'all'"),
        stack.db.write() as session,
    ):
        delete_index(session, "mir", default_index="main")


def test_the_tree_holds_no_link_to_the_shared_packages(stack: Instance, tmp_path: Path) -> None:
    _, one = mirrored(stack, "solo", "1.0")
    apply(stack, "solo", 3, one)
    doc = page(stack, "all", "solo")
    assert doc is not None
    files = doc["files"]
    assert isinstance(files, list)
    assert all("/all/packages/" in f["url"] for f in files)
