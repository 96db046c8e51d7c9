"""``tilsit why INDEX PROJECT[==VERSION]``: what a virtual index offers of a project, and why.

Every file the owning member offers, with the rule that admitted or hid it and
when a hidden one will appear; the same as ``/_/why/<index>/<project>``.
"""

from __future__ import annotations

import json

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.render.virtual import explain, why_document
from tilsit.spec.names import is_valid_name, normalize
from tilsit.spec.versions import version_key

__all__ = ["why"]


@click.command("why")
@click.argument("index")
@click.argument("requirement", metavar="PROJECT[==VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@instance_options
def why(index: str, requirement: str, as_json: bool, settings: Settings) -> None:
    """Explain what virtual index INDEX offers of PROJECT: its owner, each file's rule."""
    name, _, version = requirement.partition("==")
    if not is_valid_name(name):
        raise click.BadParameter(f"{name!r} is not a project name", param_hint="PROJECT")
    instance = open_instance_for_command(settings)
    renderer = instance.renderer
    try:
        with instance.db.read() as session:
            row = get_index(session, index)
            if row.kind != "virtual":
                raise errors.IndexError_(
                    f"Index {index!r} is a {row.kind} index: `tilsit why` explains virtual indexes"
                )
            view = explain(
                session,
                renderer.snapshots,
                row,
                normalize(name),
                renderer.clock(),
                renderer.read_blob,
            )
    except errors.IndexError_ as exc:
        fail(exc)
        return
    document = why_document(view, index, normalize(name))
    if version:
        wanted = version_key(version)
        document["files"] = [f for f in document["files"] if version_key(f["version"]) == wanted]
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    owner = document["owner"] or "no member"
    rule = document["rule"] or "none"
    click.echo(f"{index}/{document['project']}: supplied by {owner} (rule: {rule})")
    if document["reason"]:
        click.echo(f"  {document['reason']}")
    if document["status"] and document["status"] != "active":
        click.echo(f"  status: {document['status']}")
    for f in document["files"]:
        mark = "shown " if f["shown"] else "hidden"
        until = f" until {f['until']}" if f["until"] else ""
        click.echo(f"  {mark} {f['filename']}  [{f['rule']}] {f['text']}{until}")
    if not document["files"] and not document["reason"]:
        click.echo("  no file")
