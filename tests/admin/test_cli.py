"""``tilsit audit export``, ``tilsit switch`` and ``tilsit token list|revoke``; yank and
delete leave audit events."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select

from tests.builders import make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.auth import switches
from tilsit.config import Settings
from tilsit.db.models import TokenRow
from tilsit.instance import Instance


def _export(settings: Settings, *args: str) -> list[dict[str, object]]:
    out = run_cli(settings, "audit", "export", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_yank_unyank_delete_and_export_filters(
    settings: Settings, instance: Instance, client: AppClient, token: str
) -> None:
    for version in ("1.0", "2.0"):
        assert upload(client, make_wheel("audited", version), token).status_code == 200
    assert upload(client, make_wheel("other-proj", "1.0"), token).status_code == 200
    run_cli(settings, "yank", "audited", "1.0", "--reason", "broken")
    run_cli(settings, "unyank", "audited", "1.0")
    run_cli(settings, "delete", "release", "audited", "2.0")
    # Each upload also records the token's use; the order is what matters here.
    events = [e for e in _export(settings, "--project", "Audited") if e["action"] != "token.used"]
    assert [e["action"] for e in events] == [
        "project.created",
        "upload",
        "upload",
        "yank",
        "unyank",
        "delete",
    ]
    assert events[3]["detail"] == {"version": "1.0", "reason": "broken"}
    assert events[3]["actor"] == "cli" and events[3]["index"] == "main"
    assert events[5]["detail"] == {"what": "release", "version": "2.0"}
    assert {e["project"] for e in _export(settings, "--user", "alice")} >= {
        "audited",
        "other-proj",
    }
    assert _export(settings, "--since", "2999-01-01") == []
    assert [
        e["action"] for e in _export(settings, "--index", "main", "--project", "other-proj")
    ] == [
        "project.created",
        "upload",
        "token.used",
    ]

    rows = list(
        csv.reader(io.StringIO(run_cli(settings, "audit", "export", "--format", "csv").stdout))
    )
    assert rows[0][:3] == ["id", "at", "action"] and rows[0][-1] == "detail"
    assert len(rows) == 1 + len(_export(settings))

    for args, message in [
        (("--user", "nobody"), "There is no user named 'nobody'"),
        (("--index", "nope"), "There is no index named 'nope'"),
        (("--action", "made.up"), "There is no audit action 'made.up'"),
        (("--since", "last week"), "is not an ISO date"),
    ]:
        failed = run_cli(settings, "audit", "export", *args, check=False)
        assert failed.returncode != 0
        assert message in failed.stderr


def test_switch_cli(settings: Settings, instance: Instance) -> None:
    assert "read-only\toff" in run_cli(settings, "switch", "list").stdout
    assert run_cli(settings, "switch", "on", "read-only").stdout.strip() == "read-only is on"
    assert "was already on" in run_cli(settings, "switch", "on", "read-only").stdout
    with instance.db.read() as session:
        assert switches.enabled(session, switches.READ_ONLY)
    assert "read-only\ton" in run_cli(settings, "switch", "list").stdout
    run_cli(settings, "switch", "off", "read-only")
    changes = _export(settings, "--action", "switch.changed")
    assert [e["detail"] for e in changes] == [
        {"switch": "read-only", "on": True},
        {"switch": "read-only", "on": False},
    ]
    bad = run_cli(settings, "switch", "on", "everything", check=False)
    assert bad.returncode == 2 and "unknown switch 'everything'" in bad.stderr


def test_token_list_and_revoke_cli(settings: Settings, instance: Instance, token: str) -> None:
    listing = run_cli(settings, "token", "list", "--user", "alice").stdout
    assert token[:13] in listing and token not in listing
    assert "never" in listing
    bad = run_cli(settings, "token", "revoke", "tilsit-nothere", check=False)
    assert bad.returncode == 1 and "There is no API token" in bad.stderr
    bad = run_cli(settings, "token", "revoke", "hello", check=False)
    assert bad.returncode == 1 and "neither a token id nor a token prefix" in bad.stderr
    with instance.db.read() as session:
        token_id = session.scalars(select(TokenRow.id)).one()
    assert run_cli(settings, "token", "revoke", str(token_id)).stdout.strip() == (
        f"revoked {token[:13]}"
    )
    assert "already revoked" in run_cli(settings, "token", "revoke", token[:13]).stdout
    assert [e["action"] for e in _export(settings, "--action", "token.revoked")] == [
        "token.revoked"
    ]
    created = run_cli(settings, "token", "create", "--user", "alice", "--description", "x")
    new = created.stdout.strip()
    assert any(
        e["detail"]["token"] == new[:13]  # type: ignore[index]
        for e in _export(settings, "--action", "token.created")
    )
