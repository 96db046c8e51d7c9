"""``tilsit policy set|show|exempt|unexempt``, run as the operator runs them: the
document from a file or flags, validated once; audit and journal rows; and every
mistake a one-line error that changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from tests.conftest import run_cli, settings_env
from tests.policy.conftest import add_project
from tilsit.cli import main
from tilsit.config import Settings
from tilsit.db.models import AuditEventRow, JournalRow, PolicyExemptionRow, PolicyRow
from tilsit.index.policy_doc import PolicyDoc, parse_policy
from tilsit.instance import Instance

POLICY = """\
cooldown = { duration = "P7D" }
vulnerabilities = { action = "hide", ids = ["GHSA-", "PYSEC-"], min_severity = "HIGH" }
allow = { licenses = ["MIT", "Apache-2.0"] }
deny = { requirements = ["urllib3<2"], statuses = ["archived"], yanked = true }
"""


def cli(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        [*args, "--data", str(settings.data)],
        env=settings_env(settings),
    )


def audit(settings: Settings, action: str) -> list[dict[str, object]]:
    out = run_cli(settings, "audit", "export", "--action", action).stdout
    return [json.loads(line) for line in out.splitlines()]


def state(instance: Instance) -> tuple[object, ...]:
    """Everything a policy command may change."""
    with instance.db.read() as session:
        policies = [
            (row.index_id, row.version, row.document, row.source)
            for row in session.scalars(select(PolicyRow))
        ]
        exemptions = [
            (row.id, row.project, row.version, row.expires_at, row.removed_at)
            for row in session.scalars(select(PolicyExemptionRow))
        ]
        events = session.scalar(select(func.count()).select_from(AuditEventRow))
        serial = session.scalar(select(func.max(JournalRow.serial)))
    return policies, exemptions, events, serial


def test_set_from_a_file_then_flags_and_show(
    settings: Settings, instance: Instance, virtual: str, tmp_path: Path
) -> None:
    path = tmp_path / "all.toml"
    path.write_text(POLICY)
    out = run_cli(settings, "policy", "set", virtual, str(path)).stdout
    assert out == (
        "policy of 'one' set (version 1): cool-down 7 days, vulnerabilities hide,"
        " allow.licenses (2), deny.requirements (1), deny.statuses (1), no yanked files\n"
    )
    expected = parse_policy(POLICY, "all.toml")
    with instance.db.read() as session:
        (row,) = session.scalars(select(PolicyRow))
        assert row.document == expected.to_json() and row.source == POLICY
    shown = run_cli(settings, "policy", "show", virtual).stdout
    header, toml = shown.split("\n", 1)
    assert header.startswith("# policy of index 'one', version 1, set by cli at 20")
    assert toml == expected.to_toml()
    # What show prints, set takes back: nothing changes.
    path.write_text(shown)
    assert run_cli(settings, "policy", "set", virtual, str(path)).stdout == (
        "policy of 'one' unchanged (version 1)\n"
    )
    # Flags change the keys they name in the stored policy and keep the rest.
    run_cli(
        settings,
        "policy",
        "set",
        virtual,
        "--cooldown",
        "36 hours",
        "--vulns",
        "warn",
        "--vuln-id",
        "",
        "--min-severity",
        "",
        "--deny-requirement",
        "urllib3<2",
        "--deny-requirement",
        "requests==2.31.0",
        "--deny-prereleases",
        "--curated",
    )
    data = json.loads(run_cli(settings, "policy", "show", virtual, "--json").stdout)
    assert (data["index"], data["version"], data["changed_by"]) == ("one", 2, "cli")
    assert data["policy"]["cooldown"] == {"duration": "1 day 12 hours"}
    assert data["policy"]["vulnerabilities"] == {"action": "warn", "ids": []}
    assert data["policy"]["deny"]["requirements"] == ["urllib3<2", "requests==2.31.0"]
    assert data["policy"]["deny"]["prereleases"] and data["policy"]["deny"]["yanked"]
    assert data["policy"]["allow"]["licenses"] == ["MIT", "Apache-2.0"]
    assert data["policy"]["curated"] == {"enabled": True}
    assert data["exemptions"] == []
    run_cli(settings, "policy", "set", virtual, "--no-cooldown", "--no-curated")
    data = json.loads(run_cli(settings, "policy", "show", virtual, "--json").stdout)
    assert "cooldown" not in data["policy"] and data["version"] == 3
    # Each version is audited with its document, and journaled for the renderer.
    events = audit(settings, "policy.changed")
    assert [(e["index"], e["actor"], e["detail"]["version"]) for e in events] == [  # type: ignore[index]
        ("one", "cli", 1),
        ("one", "cli", 2),
        ("one", "cli", 3),
    ]
    assert events[0]["detail"]["policy"] == expected.to_json()  # type: ignore[index]
    with instance.db.read() as session:
        rows = session.scalars(select(JournalRow).where(JournalRow.action == "policy")).all()
        assert [(r.project, r.detail) for r in rows] == [
            (None, {"version": 1}),
            (None, {"version": 2}),
            (None, {"version": 3}),
        ]


def test_an_unset_policy_shows_as_the_empty_document(settings: Settings, virtual: str) -> None:
    out = run_cli(settings, "policy", "show", virtual).stdout
    assert out == "# index 'one' has no policy yet: it hides nothing\n" + PolicyDoc().to_toml()
    data = json.loads(run_cli(settings, "policy", "show", virtual, "--json").stdout)
    assert data["version"] == 0 and data["policy"] == PolicyDoc().to_json()


def test_exempt_and_unexempt(settings: Settings, instance: Instance, virtual: str) -> None:
    add_project(instance, virtual, "demo")
    before = datetime.now(UTC)
    result = run_cli(
        settings, "policy", "exempt", virtual, "Demo==1.0", "--for", "3 days", "--reason", "fix"
    )
    assert result.stdout.startswith("exemption 1: demo==1.0 passes the cool-down of 'one' until")
    assert result.stderr == (
        "warning: the policy of 'one' has no cool-down yet: the exemption matters once one is"
        " set (tilsit policy set one --cooldown '7 days')\n"
    )
    run_cli(settings, "policy", "set", virtual, "--cooldown", "7 days")
    run_cli(
        settings,
        "policy",
        "exempt",
        virtual,
        "other",
        "--until",
        "2099-01-01",
        "--reason",
        "vendor",
        check=False,
    )  # too far: refused
    until = (before + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(
        settings, "policy", "exempt", virtual, "other", "--until", until, "--reason", "vendor"
    )
    assert result.stderr == ""
    with instance.db.read() as session:
        rows = session.scalars(select(PolicyExemptionRow).order_by(PolicyExemptionRow.id)).all()
        assert [(r.id, r.project, r.version, r.reason, r.created_by) for r in rows] == [
            (1, "demo", "1.0", "fix", "cli"),
            (2, "other", None, "vendor", "cli"),
        ]
        assert timedelta(days=3) <= rows[0].expires_at - before < timedelta(days=3, minutes=5)
        assert rows[1].expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") == until
        journal = session.scalars(
            select(JournalRow).where(JournalRow.action == "policy").order_by(JournalRow.serial)
        ).all()
        assert [(j.project, j.detail) for j in journal] == [
            ("demo", {"exemption": 1, "project": "demo"}),
            (None, {"version": 1}),
            (None, {"exemption": 2, "project": "other"}),
        ]
    shown = run_cli(settings, "policy", "show", virtual).stdout
    assert "# exemption 1: demo==1.0 until 20" in shown and "(fix)" in shown
    assert f"# exemption 2: other until {until} (vendor)" in shown
    assert run_cli(settings, "policy", "unexempt", virtual, "1").stdout == (
        "exemption 1 (demo==1.0) of 'one' removed\n"
    )
    data = json.loads(run_cli(settings, "policy", "show", virtual, "--json").stdout)
    assert [e["id"] for e in data["exemptions"]] == [2]
    added = audit(settings, "policy.exemption.added")
    assert [(e["project"], e["detail"]["reason"]) for e in added] == [  # type: ignore[index]
        ("demo", "fix"),
        ("other", "vendor"),
    ]
    (removed,) = audit(settings, "policy.exemption.removed")
    assert removed["project"] == "demo" and removed["detail"]["id"] == 1  # type: ignore[index]


def test_mistakes_are_one_line_and_change_nothing(
    settings: Settings, instance: Instance, virtual: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(POLICY)
    run_cli(settings, "policy", "set", virtual, str(good))
    run_cli(settings, "policy", "exempt", virtual, "demo", "--for", "1 day", "--reason", "r")
    files = {
        "duration.toml": 'cooldown = { duration = "7 dayz" }\n',
        "requirement.toml": 'deny = { requirements = ["ok<3", "urllib3<<2"] }\n',
        "syntax.toml": "deny = {\n",
        "unknown.toml": 'deny = { version = "1" }\n',
        "binary.toml": "\udcff",
    }
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    f = {name: str(tmp_path / name) for name in files}
    before = state(instance)
    cases: list[tuple[list[str], str]] = [
        (
            ["set", virtual, f["duration.toml"]],
            f"error: {f['duration.toml']}: cooldown.duration: '7 dayz' is not a duration:"
            " use '7 days', '36 hours' or ISO 8601 'P7D'",
        ),
        (
            ["set", virtual, f["requirement.toml"]],
            f"error: {f['requirement.toml']}: deny.requirements[1]: 'urllib3<<2' is not a"
            " requirement: ",
        ),
        (["set", virtual, f["syntax.toml"]], f"error: {f['syntax.toml']}: not valid TOML: "),
        (
            ["set", virtual, f["unknown.toml"]],
            f"error: {f['unknown.toml']}: deny.version: unknown key; known keys: names,",
        ),
        (["set", virtual, f["binary.toml"]], f"error: {f['binary.toml']}: not UTF-8 text"),
        (
            ["set", virtual, str(tmp_path / "missing.toml")],
            f"error: {tmp_path / 'missing.toml'}: cannot be read (No such file or directory)",
        ),
        (
            ["set", virtual, "--cooldown", "0 days"],
            "error: command line: cooldown.duration: '0 days' is zero",
        ),
        (
            ["set", virtual, "--vulns", "block"],
            "error: command line: vulnerabilities.action: 'block' is not an action",
        ),
        (
            ["set", virtual, "--deny-kind", "exe", "--deny-status", "gone"],
            "error: command line: deny.statuses[0]: 'gone' is not a project status: use"
            " 'archived', 'deprecated', 'quarantined'; command line: deny.kinds[0]: 'exe'",
        ),
        (
            ["set", virtual, str(good), "--allow-name", "a*"],
            "error: command line: allow.names[0]: 'a*' is not a name or prefix",
        ),
        (
            ["set", "main", str(good)],
            "error: Index 'main' is a hosted index: policies are for virtual indexes",
        ),
        (["set", "nowhere", str(good)], "error: There is no index named 'nowhere'"),
        (["show", "main"], "error: Index 'main' is a hosted index: policies are for"),
        (
            ["exempt", virtual, "de mo", "--for", "1 day", "--reason", "r"],
            "error: 'de mo' is not a valid project name",
        ),
        (
            ["exempt", virtual, "demo", "--for", "1 dya", "--reason", "r"],
            "error: --for: '1 dya' is not a duration",
        ),
        (
            ["exempt", virtual, "demo", "--until", "next week", "--reason", "r"],
            "error: --until: 'next week' is not a date",
        ),
        (
            ["exempt", virtual, "demo", "--until", "2001-01-01", "--reason", "r"],
            "error: The exemption would expire at 2001-01-01T00:00:00Z, which is not in the",
        ),
        (
            ["exempt", virtual, "demo==", "--for", "1 day", "--reason", "r"],
            "error: The version is empty",
        ),
        (
            ["exempt", virtual, "demo", "--for", "1 day", "--reason", " "],
            "error: An exemption needs a reason",
        ),
        (
            ["exempt", "main", "demo", "--for", "1 day", "--reason", "r"],
            "error: Index 'main' is a hosted index",
        ),
        (["unexempt", virtual, "7"], "error: Index 'one' has no exemption 7"),
    ]
    # In-process (click's runner): the same commands, some forty of them, at a
    # fraction of the start-up time of as many processes.
    for args, message in cases:
        result = cli(settings, "policy", *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""
    # Usage mistakes: click's usage message, exit status 2.
    for args in (
        ["set", virtual],
        ["set", virtual, "--cooldown", "1 day", "--no-cooldown"],
        ["exempt", virtual, "demo", "--reason", "r"],
        ["exempt", virtual, "demo", "--for", "1 day", "--until", "2030-01-01", "--reason", "r"],
        ["exempt", virtual, "demo", "--for", "1 day"],
        ["unexempt", virtual, "x"],
    ):
        result = cli(settings, "policy", *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert state(instance) == before
