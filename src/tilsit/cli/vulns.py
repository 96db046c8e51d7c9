"""``tilsit vuln import|show|list``: OSV vulnerability and malware data, imported offline."""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy import select

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.models import VulnRow
from tilsit.index.vuln_reads import known_vulns
from tilsit.index.vulns import InvalidExport, import_osv, scan_export
from tilsit.spec.names import normalize

__all__ = ["vuln"]


@click.group()
def vuln() -> None:
    """Vulnerability and malware data (OSV records of the PyPI ecosystem)."""


@vuln.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@instance_options
def import_command(file: Path, settings: Settings) -> None:
    """Import OSV records: the PyPI export (all.zip) or one record (.json).

    Incremental: a record is taken when its "modified" is newer than the stored one;
    a withdrawn record deletes the stored one. Every record is checked before anything
    is written, so an invalid file changes nothing.
    """
    instance = open_instance_for_command(settings)
    try:
        export = scan_export(file)  # every record checked, outside the write lock
        with instance.db.write() as session:
            result = import_osv(session, export, actor="cli")
    except InvalidExport as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(
        f"imported {file} (sha256 {result.sha256}): {result.records} records,"
        f" {result.added} new, {result.updated} updated, {result.removed} withdrawn,"
        f" {result.unchanged} unchanged, {result.ignored} ignored;"
        f" {result.projects} project pages re-rendered"
    )


@vuln.command("show")
@click.argument("ident", metavar="ID")
@instance_options
def show(ident: str, settings: Settings) -> None:
    """Print an imported record (OSV JSON)."""
    instance = open_instance_for_command(settings)
    with instance.db.read() as session:
        row = session.get(VulnRow, ident)
        if row is None:
            # An alias (CVE-…) finds the records that carry it, to say which to ask for.
            rows = session.execute(select(VulnRow.id, VulnRow.aliases).order_by(VulnRow.id))
            matches = [found for found, aliases in rows if ident in aliases][:5]
            hint = f"; it is an alias of {', '.join(matches)}" if matches else ""
            fail(f"no imported OSV record has the id {ident!r}{hint}")
            return
        click.echo(json.dumps(row.record, indent=2, sort_keys=True, ensure_ascii=False))


@vuln.command("list")
@click.argument("project")
@click.option("--version", "version", default=None, help="Only the records that affect VERSION.")
@instance_options
def list_command(project: str, version: str | None, settings: Settings) -> None:
    """List the imported records that name PROJECT (one line each)."""
    instance = open_instance_for_command(settings)
    name = normalize(project)
    with instance.db.read() as session:
        found = known_vulns(session, name)
    if version is not None:
        found = [v for v in found if v.affects(version)]
    if not found:
        which = f" {version}" if version is not None else ""
        click.echo(f"no imported OSV record names {name}{which}")
        return
    for item in found:
        kind = "MALWARE " if item.malicious else ""
        fixed = ", ".join(item.fixed_in) or "none"
        aliases = f" ({', '.join(item.aliases)})" if item.aliases else ""
        summary = item.summary or item.details.split("\n", 1)[0]
        click.echo(f"{item.id}{aliases}: {kind}fixed in {fixed}: {summary[:120]}")
