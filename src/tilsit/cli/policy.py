"""``tilsit policy set|show|exempt|unexempt``: a virtual index's policy and exemptions.

A policy is one document (docs/policies.md), replaced whole: ``set`` takes a TOML
file, or the stored document, changes the keys its flags name, and validates the
result once with the parser every document goes through, so a file and flags are
held to the same rules and a refused change changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.config.durations import InvalidDuration, format_duration, parse_duration
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.index.policies import (
    add_exemption,
    check_virtual,
    list_exemptions,
    remove_exemption,
    set_policy,
    stored_policy,
)
from tilsit.index.policy import format_time
from tilsit.index.policy_doc import PolicyDoc, parse_policy

__all__ = ["policy"]

_ACTOR = "cli"
# Where a document built from flags says its problems come from.
_FLAGS_SOURCE = "command line"

F = TypeVar("F", bound=Callable[..., Any])

# Flag -> (section, key) of the document; each list flag is repeatable and replaces
# the list ('' alone empties it).
_LIST_FLAGS = {
    "vuln_id": ("vulnerabilities", "ids"),
    "allow_name": ("allow", "names"),
    "allow_requirement": ("allow", "requirements"),
    "allow_license": ("allow", "licenses"),
    "deny_name": ("deny", "names"),
    "deny_requirement": ("deny", "requirements"),
    "deny_status": ("deny", "statuses"),
    "deny_kind": ("deny", "kinds"),
}
_BOOL_FLAGS = {
    "deny_prereleases": ("deny", "prereleases"),
    "deny_yanked": ("deny", "yanked"),
    "curated": ("curated", "enabled"),
}


@click.group()
def policy() -> None:
    """Policies of virtual indexes: what they hide, and cool-down exemptions."""


def _document_options(func: F) -> F:
    decorators = [
        click.option(
            "--cooldown",
            default=None,
            metavar="DURATION",
            help="Hide mirror and proxy files younger than this ('7 days', 'P7D').",
        ),
        click.option("--no-cooldown", is_flag=True, help="No cool-down."),
        click.option(
            "--vulns",
            default=None,
            metavar="off|warn|hide",
            help="What a version with a known vulnerability gets.",
        ),
        click.option(
            "--vuln-id",
            multiple=True,
            metavar="PREFIX",
            help="Only records whose id or alias starts so ('GHSA-'); repeatable.",
        ),
        click.option(
            "--min-severity",
            default=None,
            metavar="LEVEL",
            help="Only records of this severity or more, where they state one"
            " (LOW, MODERATE, HIGH, CRITICAL; '' for any).",
        ),
        click.option("--allow-name", multiple=True, metavar="NAME", help="Only these projects."),
        click.option(
            "--allow-requirement",
            multiple=True,
            metavar="REQ",
            help="Only these versions of the project named ('django>=4.2').",
        ),
        click.option(
            "--allow-license", multiple=True, metavar="SPDX", help="Only these licences ('MIT')."
        ),
        click.option(
            "--deny-name", multiple=True, metavar="NAME", help="Never these projects ('evil-*')."
        ),
        click.option(
            "--deny-requirement",
            multiple=True,
            metavar="REQ",
            help="Never these versions ('urllib3<2').",
        ),
        click.option(
            "--deny-status",
            multiple=True,
            metavar="STATUS",
            help="Never projects so marked (archived, deprecated, quarantined).",
        ),
        click.option(
            "--deny-kind",
            multiple=True,
            metavar="KIND",
            help="Never files of this kind (bdist_egg).",
        ),
        click.option(
            "--deny-prereleases/--allow-prereleases", default=None, help="Hide pre-releases or not."
        ),
        click.option(
            "--deny-yanked/--allow-yanked",
            default=None,
            help="Hide files yanked by their upstream or not.",
        ),
        click.option(
            "--curated/--no-curated",
            default=None,
            help="Show non-hosted releases only once a reviewer approved them.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _apply_flags(document: dict[str, Any], values: dict[str, Any]) -> bool:
    """Change ``document`` as the flags in ``values`` ask; False if none was given."""
    changes: list[tuple[str, str, object]] = []
    if values["cooldown"] is not None:
        changes.append(("cooldown", "duration", values["cooldown"]))
    if values["vulns"] is not None:
        changes.append(("vulnerabilities", "action", values["vulns"]))
    if values["min_severity"] is not None:
        changes.append(("vulnerabilities", "min_severity", values["min_severity"] or None))
    for flag, (section, key) in _LIST_FLAGS.items():
        if values[flag]:
            changes.append((section, key, [v for v in values[flag] if v]))
    for flag, (section, key) in _BOOL_FLAGS.items():
        if values[flag] is not None:
            changes.append((section, key, values[flag]))
    for section, key, value in changes:
        table = document.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # not a table: parse_policy says so
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    if values["no_cooldown"]:
        document.pop("cooldown", None)
    return bool(changes) or values["no_cooldown"]


def _stop(message: str) -> NoReturn:
    fail(message)
    raise AssertionError("fail() exits")


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _stop(f"{path}: not UTF-8 text: a policy is a TOML file")
    except OSError as exc:
        _stop(f"{path}: cannot be read ({exc.strerror}): give a TOML policy file")


@policy.command("set")
@click.argument("name")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@_document_options
@instance_options
def policy_set(name: str, file: Path | None, settings: Settings, **values: Any) -> None:
    """Set the policy of virtual index NAME: from FILE (TOML), and/or change the keys
    the flags name in the stored policy (or in FILE's).

    The result is validated whole: on any problem, nothing changes. A list flag
    replaces its list; give it again for more items, or '' to empty it.
    """
    if values["cooldown"] is not None and values["no_cooldown"]:
        raise click.UsageError("--cooldown and --no-cooldown exclude each other")
    flags = _apply_flags({}, values)
    if file is None and not flags:
        raise click.UsageError(
            "nothing to set: give a TOML FILE or flags (see tilsit policy set --help)"
        )
    text = _read_file(file) if file is not None else None
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            index = get_index(session, name)
            check_virtual(index)
            if file is not None and text is not None:
                doc = parse_policy(text, str(file))
                source = text
            else:
                doc = stored_policy(session, index).policy
                source = ""
            if flags:
                document = doc.to_json()
                _apply_flags(document, values)
                doc = PolicyDoc.from_json(document, _FLAGS_SOURCE)
                source = doc.to_toml()
            version = set_policy(session, index, doc, source, _ACTOR)
            current = stored_policy(session, index).version
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    if version is None:
        click.echo(f"policy of {name!r} unchanged (version {current})")
    else:
        click.echo(f"policy of {name!r} set (version {version}): {_summary(doc)}")


def _summary(doc: PolicyDoc) -> str:
    """The rules a policy turns on, in a few words."""
    parts = []
    if doc.cooldown is not None:
        parts.append(f"cool-down {format_duration(doc.cooldown.duration)}")
    if doc.vulnerabilities.action != "off":
        parts.append(f"vulnerabilities {doc.vulnerabilities.action}")
    for section, rules in (("allow", doc.allow), ("deny", doc.deny)):
        for key in ("names", "requirements", "licenses", "statuses", "kinds"):
            items = getattr(rules, key, ())
            if items:
                parts.append(f"{section}.{key} ({len(items)})")
    if doc.deny.prereleases:
        parts.append("no pre-releases")
    if doc.deny.yanked:
        parts.append("no yanked files")
    if doc.curated.enabled:
        parts.append("curated")
    return ", ".join(parts) or "hides nothing"


@policy.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of TOML.")
@instance_options
def policy_show(name: str, as_json: bool, settings: Settings) -> None:
    """Print the policy of virtual index NAME and its exemptions in force.

    The TOML printed is the canonical document: `tilsit policy set NAME FILE` takes
    it back unchanged.
    """
    instance = open_instance_for_command(settings)
    now = datetime.now(UTC)
    try:
        with instance.db.read() as session:
            index = get_index(session, name)
            stored = stored_policy(session, index)
            exemptions: list[dict[str, Any]] = [
                {
                    "id": row.id,
                    "project": row.project,
                    "version": row.version,
                    "expires_at": format_time(row.expires_at),
                    "reason": row.reason,
                    "created_by": row.created_by,
                }
                for row in list_exemptions(session, index, now)
            ]
    except errors.IndexError_ as exc:
        fail(exc)
        return
    if as_json:
        click.echo(
            json.dumps(
                {
                    "index": name,
                    "version": stored.version,
                    "changed_by": stored.changed_by or None,
                    "changed_at": format_time(stored.changed_at) if stored.changed_at else None,
                    "policy": stored.policy.to_json(),
                    "exemptions": exemptions,
                },
                indent=2,
            )
        )
        return
    if stored.version:
        assert stored.changed_at is not None
        click.echo(
            f"# policy of index {name!r}, version {stored.version},"
            f" set by {stored.changed_by or '?'} at {format_time(stored.changed_at)}"
        )
    else:
        click.echo(f"# index {name!r} has no policy yet: it hides nothing")
    click.echo(stored.policy.to_toml(), nl=False)
    for exemption in exemptions:
        version = f"=={exemption['version']}" if exemption["version"] else ""
        what = f"{exemption['project']}{version}"
        click.echo(
            f"# exemption {exemption['id']}: {what} until {exemption['expires_at']}"
            f" ({exemption['reason']})"
        )


def _until(until: str | None, duration: str | None, now: datetime) -> datetime:
    if (until is None) == (duration is None):
        raise click.UsageError("give the end of the exemption: --until DATE or --for DURATION")
    if duration is not None:
        try:
            return now + parse_duration(duration)
        except InvalidDuration as exc:
            _stop(f"--for: {exc}")
    assert until is not None
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        _stop(
            f"--until: {until!r} is not a date: give an ISO date or time in UTC"
            " ('2026-12-31', '2026-12-31T12:00:00Z')"
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@policy.command("exempt")
@click.argument("name")
@click.argument("target", metavar="PROJECT[==VERSION]")
@click.option("--until", default=None, metavar="DATE", help="Until this ISO date or time (UTC).")
@click.option("--for", "duration", default=None, metavar="DURATION", help="For '3 days', 'P3D'.")
@click.option("--reason", required=True, help="Why it may pass early (kept in the audit log).")
@instance_options
def policy_exempt(
    name: str,
    target: str,
    until: str | None,
    duration: str | None,
    reason: str,
    settings: Settings,
) -> None:
    """Let PROJECT (or one VERSION of it) through the cool-down of virtual index NAME
    until a date, or for a while. Other rules still apply."""
    now = datetime.now(UTC)
    expires_at = _until(until, duration, now)
    project, separator, version = target.partition("==")
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            index = get_index(session, name)
            row = add_exemption(
                session,
                index,
                project.strip(),
                version.strip() if separator else None,
                expires_at,
                reason,
                _ACTOR,
                now=now,
            )
            number, project_name = row.id, row.project
            cooldown = stored_policy(session, index).policy.cooldown
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    what = project_name + (f"=={version.strip()}" if separator else "")
    click.echo(
        f"exemption {number}: {what} passes the cool-down of {name!r}"
        f" until {format_time(expires_at)}"
    )
    if cooldown is None:
        # Kept: an exemption made ahead of a cool-down is a decision of its own.
        click.echo(
            f"warning: the policy of {name!r} has no cool-down yet: the exemption matters"
            f" once one is set (tilsit policy set {name} --cooldown '7 days')",
            err=True,
        )


@policy.command("unexempt")
@click.argument("name")
@click.argument("exemption_id", metavar="ID", type=int)
@instance_options
def policy_unexempt(name: str, exemption_id: int, settings: Settings) -> None:
    """End exemption ID of virtual index NAME now (`tilsit policy show NAME` lists them)."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            index = get_index(session, name)
            row = remove_exemption(session, index, exemption_id, _ACTOR)
            what = row.project + (f"=={row.version}" if row.version else "")
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    click.echo(f"exemption {exemption_id} ({what}) of {name!r} removed")
