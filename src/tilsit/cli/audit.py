"""``tilsit audit export``: the audit log as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime

import click

from tilsit.auth.audit_query import (
    EXPORT_FIELDS,
    EventFilter,
    UnknownFilterValue,
    export_rows,
    spreadsheet_cell,
)
from tilsit.cli.options import instance_options, open_instance_for_command
from tilsit.config import Settings

__all__ = ["audit"]


def parse_since(text: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC if no zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not an ISO date (2026-01-31) or date and time (2026-01-31T12:00)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group()
def audit() -> None:
    """Read the audit log."""


@audit.command("export")
@click.option("--user", "user_name", default=None, help="Events about or by this user.")
@click.option("--project", default=None, help="Events about this project.")
@click.option("--index", "index_name", default=None, help="Events in this index.")
@click.option("--action", default=None, help="Only this action (e.g. token.refused).")
@click.option("--since", default=None, help="From this ISO date or date-time (UTC).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
)
@instance_options
def audit_export(
    user_name: str | None,
    project: str | None,
    index_name: str | None,
    action: str | None,
    since: str | None,
    output_format: str,
    settings: Settings,
) -> None:
    """Write audit events to stdout, oldest first: JSON lines or CSV."""
    wanted = EventFilter(
        user=user_name,
        project=project,
        index=index_name,
        action=action,
        since=parse_since(since) if since else None,
    )
    instance = open_instance_for_command(settings)
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if output_format == "csv" else None
    if writer is not None:
        writer.writerow([*EXPORT_FIELDS, "detail"])
    with instance.db.read() as session:
        try:
            for event in export_rows(session, wanted):
                record = event.as_dict()
                if writer is None:
                    out.write(json.dumps(record, sort_keys=True) + "\n")
                else:
                    # Every cell can carry text an outsider chose (a user name typed
                    # at the login form, a forwarded address), and the file is meant
                    # for spreadsheets.
                    writer.writerow(
                        [
                            *(spreadsheet_cell(record[f]) for f in EXPORT_FIELDS),
                            spreadsheet_cell(json.dumps(record["detail"], sort_keys=True)),
                        ]
                    )
        except UnknownFilterValue as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
