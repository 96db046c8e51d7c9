"""The virtual index commands as an operator meets them: one line per mistake, exit 1,
nothing changed (the journal's last serial and the members stay as they were)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import run_cli
from tilsit.config import Settings
from tilsit.db.models import JournalRow, ReservationRow, VirtualMemberRow, VirtualRouteRow
from tilsit.instance import Instance


@pytest.fixture
def indexes(settings: Settings, instance: Instance) -> Settings:
    run_cli(settings, "index", "create", "internal")
    run_cli(settings, "index", "create", "mir", "--mirror", "https://upstream.invalid/simple/")
    run_cli(settings, "index", "create", "all", "--virtual", "--members", "internal,mir")
    return settings


def _state(instance: Instance) -> tuple[object, ...]:
    with instance.db.read() as session:
        return (
            session.scalar(select(func.max(JournalRow.serial))),
            session.scalar(select(func.count()).select_from(VirtualMemberRow)),
            session.scalar(select(func.count()).select_from(VirtualRouteRow)),
            session.scalar(select(func.count()).select_from(ReservationRow)),
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("index", "create", "v2", "--virtual", "--members", "internal,pbu"),
            "There is no index named 'pbu'",
        ),
        (("index", "set", "all", "--members", "internal,internal"), "'internal' is listed twice"),
        (("index", "set", "all", "--members", "all"), "cannot be a member of itself"),
        (
            ("index", "set", "internal", "--members", "mir"),
            "'internal' is a hosted index: --members is for virtual indexes",
        ),
        (
            ("index", "route", "all", "acme-x", "nope"),
            "'nope' is not a member of 'all' (members: internal, mir)",
        ),
        (
            ("index", "reserve", "mir", "acme-*"),
            "Only a hosted index reserves names: 'mir' is a mirror index",
        ),
        (("index", "reserve", "internal", "acme*"), "is not a project name or a prefix"),
        (("index", "delete", "mir", "--yes"), "'mir' is a member of virtual index 'all'"),
        (("policy", "set", "all", "--cooldown", "7 dayz"), "'7 dayz' is not a duration"),
        (("why", "internal", "x"), "'internal' is a hosted index"),
    ],
)
def test_a_mistake_is_one_line_and_changes_nothing(
    indexes: Settings, instance: Instance, args: tuple[str, ...], message: str
) -> None:
    before = _state(instance)
    result = run_cli(indexes, *args, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _state(instance) == before


def test_a_cycle_is_named(indexes: Settings) -> None:
    run_cli(indexes, "index", "create", "outer", "--virtual", "--members", "all")
    result = run_cli(indexes, "index", "set", "all", "--members", "internal,outer", check=False)
    assert result.returncode == 1
    assert "would make a cycle: all -> outer -> all" in result.stderr


def test_members_routes_and_reservations_are_listed(indexes: Settings) -> None:
    run_cli(indexes, "index", "route", "all", "Shared_Name", "mir", "--reason", "upstream's")
    run_cli(indexes, "index", "reserve", "internal", "acme-*")
    members = run_cli(indexes, "index", "members", "all").stdout.splitlines()
    assert members == [
        "1\tinternal\thosted\tpublic",
        "2\tmir\tmirror\tpublic",
        "route\tshared-name\t-> mir\tupstream's",
    ]
    assert run_cli(indexes, "index", "reservations").stdout.splitlines() == ["internal\tacme-*"]
    listed = run_cli(indexes, "index", "list").stdout
    assert "members internal,mir" in listed


def test_a_proxy_before_a_hosted_member_is_warned_about(indexes: Settings) -> None:
    result = run_cli(indexes, "index", "create", "bad", "--virtual", "--members", "mir,internal")
    assert "names of 'internal' can be supplied by 'mir'" in result.stderr
