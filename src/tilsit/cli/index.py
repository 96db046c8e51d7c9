"""``tilsit index create|list|set|delete|grant|revoke|permissions``.

The CLI acts as the server's operator: it records its changes as actor "cli".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.cli.upstream_options import (
    FILTER_PARAMS,
    UPSTREAM_PARAMS,
    filter_options,
    filters_document,
    given_filters,
    read_password_stdin,
    upstream_changes,
    upstream_options,
)
from tilsit.config import Settings
from tilsit.db.models import IndexRow
from tilsit.index import errors
from tilsit.index.access import INDEX_PERMISSIONS
from tilsit.index.manage import (
    change_index,
    check_deletable,
    create_index,
    delete_index,
    get_index,
    get_user,
)
from tilsit.index.permissions import (
    CREATE_POLICIES,
    grant_permission,
    list_permissions,
    revoke_permission,
    set_visibility,
)
from tilsit.index.upstream_options import public_url
from tilsit.index.virtual import (
    InvalidMembers,
    clear_route,
    members_of,
    reservations,
    reserve,
    routes_of,
    set_members,
    set_route,
    unreserve,
)
from tilsit.trust.mirror import root_text
from tilsit.upstream.filters import InvalidFilter

__all__ = ["index"]

_ACTOR = "cli"


@click.group()
def index() -> None:
    """Create and list indexes."""


@index.command("create")
@click.argument("name")
@click.option(
    "--mirror",
    "mirror_url",
    default=None,
    metavar="URL",
    help="Make a mirror of the simple index at URL (synced by `tilsit mirror sync`).",
)
@click.option(
    "--proxy",
    "proxy_url",
    default=None,
    metavar="URL",
    help="Make a pull-through proxy of the simple index at URL.",
)
@click.option(
    "--virtual",
    is_flag=True,
    help="Make a virtual index serving its --members' projects, each name from one member.",
)
@click.option(
    "--members",
    default=None,
    metavar="A,B,...",
    help="Virtual: the member indexes, in the order names are looked up.",
)
@click.option(
    "--expose-private",
    is_flag=True,
    help="Virtual: allow a private member in a public virtual index (its files become"
    " readable by anyone through it; audited).",
)
@upstream_options
@click.option(
    "--upstream-root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Mirror: the origin's TUF root (1.root.json) to verify it against"
    " (default: trust the origin's root on the first sync).",
)
@filter_options
@click.option("--private", is_flag=True, help="Only users granted 'read' may read it.")
@click.option(
    "--create-policy",
    type=click.Choice(["anyone", "listed"]),
    default=None,
    help="Who may create projects: any user, or only users granted 'create'"
    " (default: listed for a --private index, else anyone).",
)
@instance_options
def index_create(
    name: str,
    mirror_url: str | None,
    proxy_url: str | None,
    virtual: bool,
    members: str | None,
    expose_private: bool,
    upstream_root: Path | None,
    private: bool,
    create_policy: str | None,
    settings: Settings,
    **values: Any,
) -> None:
    """Create an index, served at /NAME/simple/: hosted, or --mirror / --proxy of URL.

    A mirror or proxy takes the filters of `tilsit mirror configure` here too, so a
    mirror with an --interval is filtered from its first scheduled sync.
    """
    # In a private index every user who may create a project may also probe its names
    # (a name that exists is refused), so only listed users create unless told otherwise.
    create_policy = create_policy or ("listed" if private else "anyone")
    if mirror_url and proxy_url:
        raise click.UsageError("--mirror and --proxy exclude each other")
    if virtual and (mirror_url or proxy_url):
        raise click.UsageError("--virtual excludes --mirror and --proxy")
    if virtual and members is None:
        raise click.UsageError("--virtual needs --members A,B,... (the member indexes, in order)")
    if not virtual and (members is not None or expose_private):
        raise click.UsageError("--members and --expose-private are for --virtual indexes")
    if upstream_root is not None and not mirror_url:
        raise click.UsageError("--upstream-root is for --mirror indexes")
    kind = "mirror" if mirror_url else "proxy" if proxy_url else "virtual" if virtual else "hosted"
    upstream_values = {k: values[k] for k in UPSTREAM_PARAMS}
    filter_values = {k: values[k] for k in FILTER_PARAMS}
    if kind in ("hosted", "virtual") and (
        given_filters(filter_values)
        or filter_values["timeout"] is not None
        or any(v not in (None, False) for v in upstream_values.values())
    ):
        raise click.UsageError("upstream settings and filters are for --mirror and --proxy indexes")
    options: dict[str, object] = {}
    try:
        if kind in ("mirror", "proxy"):
            options["upstream"] = mirror_url or proxy_url
            read_password_stdin(upstream_values)
            changes = upstream_changes(None, **upstream_values)
            options.update({k: v for k, v in changes.items() if v is not None})
            if given_filters(filter_values):
                options["filters"] = filters_document(
                    None, **{k: v for k, v in filter_values.items() if k != "timeout"}
                ).to_options()
            if filter_values["timeout"] is not None:
                options["timeout"] = filter_values["timeout"]
    except InvalidFilter as exc:
        raise click.UsageError(str(exc)) from exc
    except errors.IndexError_ as exc:
        fail(exc)
    if upstream_root is not None:
        try:
            options["upstream_root"] = root_text(upstream_root)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--upstream-root") from exc
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            created = create_index(session, name, kind, actor="cli", options=options)
            set_visibility(
                session, created, private=private, create_policy=create_policy, actor_name="cli"
            )
            if members is not None:
                changed = set_members(
                    session,
                    created,
                    _member_names(members),
                    actor=_ACTOR,
                    expose_private=expose_private,
                )
            options = dict(created.options)
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    where = (
        f": uploads to /{name}/legacy/"
        if kind == "hosted"
        else f" of {', '.join(changed.members)}"
        if kind == "virtual"
        else f" of {public_url(str(options['upstream']))}"
    )
    access = (
        f" (private, create policy {create_policy})"
        if private
        else f" (public, create policy {create_policy})"
    )
    click.echo(f"created {kind} index {name!r} at /{name}/simple/{where}{access}")
    if kind == "virtual":
        _warn_order(instance, name)
    if kind == "mirror" and "interval" in options:
        filters = options.get("filters") or {}
        what = f"filters {json.dumps(filters, sort_keys=True)}" if filters else "no filters"
        click.echo(f"scheduled: synced every {options['interval']} s by `tilsit serve`, {what}")


@index.command("list")
@instance_options
def index_list(settings: Settings) -> None:
    """List indexes: name, kind, public or private, last serial, upstream (no credentials)."""
    instance = open_instance_for_command(settings)
    with instance.db.read() as session:
        for row in session.scalars(select(IndexRow).order_by(IndexRow.name)):
            access = "private" if row.private else "public"
            upstream = (row.options or {}).get("upstream")
            fields = [row.name, row.kind, access, f"serial {row.last_serial}"]
            if upstream:
                fields.append(public_url(str(upstream)))
            if row.kind == "virtual":
                fields.append("members " + ",".join(m.name for m in members_of(session, row)))
            default = " (default)" if row.name == settings.default_index else ""
            click.echo("\t".join(fields) + default)


@index.command("set")
@click.argument("name")
@click.option("--private/--public", default=None, help="Who may read the index.")
@click.option(
    "--create-policy",
    type=click.Choice(CREATE_POLICIES),
    default=None,
    help="anyone: every user may create projects; listed: only users granted 'create'.",
)
@click.option(
    "--upstream",
    "upstream_url",
    default=None,
    metavar="URL",
    help="Mirror or proxy: a new upstream simple index URL. A mirror's next sync then"
    " compares every project with the new upstream; a proxy revalidates every page.",
)
@upstream_options
@click.option("--no-upstream-auth", is_flag=True, help="Forget the upstream credentials.")
@click.option(
    "--members",
    default=None,
    metavar="A,B,...",
    help="Virtual: the new member indexes, in order.",
)
@click.option(
    "--expose-private",
    is_flag=True,
    help="Allow a private index to be read through a public virtual index (audited).",
)
@instance_options
def index_set(
    name: str,
    private: bool | None,
    create_policy: str | None,
    upstream_url: str | None,
    no_upstream_auth: bool,
    members: str | None,
    expose_private: bool,
    settings: Settings,
    **values: Any,
) -> None:
    """Change an index: who may read it and create projects; a mirror's or proxy's
    upstream URL, credentials, CA bundle, sync interval or TTL.

    The running server picks the change up at its next sync or fetch.
    """
    upstream_given = upstream_url is not None or no_upstream_auth
    upstream_given = upstream_given or any(v not in (None, False) for v in values.values())
    if private is None and create_policy is None and not upstream_given and members is None:
        raise click.UsageError(
            "nothing to set: give --private/--public, --create-policy, --members, or an upstream"
            " setting (--upstream, --upstream-username, --upstream-password[-stdin],"
            " --no-upstream-auth, --ca-bundle, --interval, --ttl)"
        )
    if no_upstream_auth and (
        values["upstream_username"] is not None
        or values["upstream_password"] is not None
        or values["upstream_password_stdin"]
    ):
        raise click.UsageError("--no-upstream-auth excludes new upstream credentials")
    try:
        read_password_stdin(values)
    except errors.IndexError_ as exc:
        fail(exc)
    instance = open_instance_for_command(settings)
    changed: list[str] = []
    try:
        with instance.db.write() as session:
            row = get_index(session, name)
            if upstream_given:
                changes = upstream_changes((row.options or {}).get("auth"), **values)
                if upstream_url is not None:
                    changes["upstream"] = upstream_url
                if no_upstream_auth:
                    changes["auth"] = None
                changed = change_index(session, row, changes, actor=_ACTOR)
            visibility = False
            if private is not None or create_policy is not None:
                visibility = set_visibility(
                    session,
                    row,
                    private=private,
                    create_policy=create_policy,
                    actor_name=_ACTOR,
                    expose_private=expose_private,
                )
            if members is not None:
                moved = set_members(
                    session,
                    row,
                    _member_names(members),
                    actor=_ACTOR,
                    expose_private=expose_private,
                )
                changed.append(f"members ({moved.renamed} names re-decided)")
            state = f"{'private' if row.private else 'public'}, create policy {row.create_policy}"
            upstream = (row.options or {}).get("upstream")
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    unchanged = not changed and not visibility
    where = f", upstream {public_url(str(upstream))}" if upstream else ""
    settings_changed = f"; changed: {', '.join(changed)}" if changed else ""
    click.echo(
        f"index {name!r} is {state}{where}{settings_changed}"
        + (" (unchanged)" if unchanged else "")
    )
    if "upstream" in changed and row.kind == "mirror":
        click.echo(
            f"the next sync of {name!r} compares every project with the new upstream", err=True
        )
    if state == "private, create policy anyone":
        # Kept as asked: changing who may create is a decision of its own. Reads stay
        # closed (a new project opens only itself), but names can be probed by uploading.
        click.echo(
            f"warning: any user may still create projects in private index {name!r}, and so"
            " learn whether a name is taken by trying it; use --create-policy listed to"
            " allow only users granted 'create'",
            err=True,
        )


def _member_names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _warn_order(instance: Any, name: str) -> None:
    """Warn when a mirror or proxy comes before a hosted member: it supplies the hosted
    member's names first, which is the dependency-confusion hole a virtual index closes."""
    with instance.db.read() as session:
        members = members_of(session, get_index(session, name))
    for position, member in enumerate(members):
        if member.kind != "hosted":
            continue
        ahead = [m.name for m in members[:position] if m.kind in ("mirror", "proxy", "virtual")]
        if ahead:
            click.echo(
                f"warning: names of {member.name!r} can be supplied by"
                f" {', '.join(repr(a) for a in ahead)}, which come first in {name!r};"
                " reserve them (tilsit index reserve) or put the hosted index first",
                err=True,
            )


@index.command("members")
@click.argument("name")
@instance_options
def index_members(name: str, settings: Settings) -> None:
    """List the members of virtual index NAME, in order, and its routes."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            row = get_index(session, name)
            if row.kind != "virtual":
                raise InvalidMembers(f"Index {name!r} is a {row.kind} index, not a virtual one")
            for position, member in enumerate(members_of(session, row), start=1):
                access = "private" if member.private else "public"
                click.echo(f"{position}\t{member.name}\t{member.kind}\t{access}")
            for project, member_name, reason in routes_of(session, row):
                click.echo(
                    f"route\t{project}\t-> {member_name}" + (f"\t{reason}" if reason else "")
                )
    except errors.IndexError_ as exc:
        fail(exc)


@index.command("route")
@click.argument("name")
@click.argument("project")
@click.argument("member")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@instance_options
def index_route(name: str, project: str, member: str, reason: str, settings: Settings) -> None:
    """Let MEMBER supply PROJECT in virtual index NAME, whatever the member order says."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            set_route(
                session, get_index(session, name), project, member, reason=reason, actor=_ACTOR
            )
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(f"{project!r} in {name!r} is supplied by {member!r}")


@index.command("unroute")
@click.argument("name")
@click.argument("project")
@instance_options
def index_unroute(name: str, project: str, settings: Settings) -> None:
    """Remove PROJECT's route in virtual index NAME: the member order decides again."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            clear_route(session, get_index(session, name), project, actor=_ACTOR)
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(f"{project!r} in {name!r} follows the member order again")


@index.command("reserve")
@click.argument("name")
@click.argument("pattern")
@instance_options
def index_reserve(name: str, pattern: str, settings: Settings) -> None:
    """Reserve a project name, or a prefix such as 'acme-*', for hosted index NAME.

    No other index supplies it in any virtual index (even before its first upload),
    look-alikes of it are hidden there, and uploads of it go only to NAME.
    """
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            row = reserve(session, get_index(session, name), pattern, actor=_ACTOR)
            shown = row.pattern + ("*" if row.prefix else "")
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    click.echo(f"{shown!r} is reserved for index {name!r}")


@index.command("unreserve")
@click.argument("name")
@click.argument("pattern")
@instance_options
def index_unreserve(name: str, pattern: str, settings: Settings) -> None:
    """Remove a reservation of hosted index NAME."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            unreserve(session, get_index(session, name), pattern, actor=_ACTOR)
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(f"{pattern!r} is no longer reserved for index {name!r}")


@index.command("reservations")
@click.argument("name", required=False)
@instance_options
def index_reservations(name: str | None, settings: Settings) -> None:
    """List reserved names and prefixes (of hosted index NAME, or all)."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            row = get_index(session, name) if name is not None else None
            for holder, pattern in reservations(session, row):
                click.echo(f"{holder}\t{pattern}")
    except errors.IndexError_ as exc:
        fail(exc)


@index.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask: delete NAME.")
@instance_options
def index_delete(name: str, yes: bool, settings: Settings) -> None:
    """Delete index NAME: its URLs answer 404, its syncs stop, its name stays taken.

    Its rows (projects, files, journal, audit) are kept; blobs no index uses are
    left to `tilsit fsck`. Asks you to type NAME unless --yes is given.
    """
    instance = open_instance_for_command(settings)
    try:
        check_deletable(name, settings.default_index)  # before asking
        with instance.db.read() as session:
            row = get_index(session, name)
            kind = row.kind
    except errors.IndexError_ as exc:
        fail(exc)
        return
    if not yes:
        typed = click.prompt(
            f"This deletes {kind} index {name!r}: its pages and files stop being served."
            " Type its name to confirm",
            default="",
            show_default=False,
        )
        if typed != name:
            click.echo(f"error: {typed!r} is not {name!r}: nothing deleted", err=True)
            sys.exit(1)
    try:
        with instance.db.write() as session:
            delete_index(session, name, default_index=settings.default_index, actor=_ACTOR)
    except errors.IndexError_ as exc:
        fail(exc)
        return
    instance.renderer.catch_up()
    click.echo(f"deleted {kind} index {name!r}; its name stays taken while its rows exist")


def _permission_command(grant: bool) -> click.Command:
    verb = "grant" if grant else "revoke"

    @click.argument("name")
    @click.argument("user_name", metavar="USER")
    @click.argument("permission", type=click.Choice(INDEX_PERMISSIONS))
    @instance_options
    def command(name: str, user_name: str, permission: str, settings: Settings) -> None:
        instance = open_instance_for_command(settings)
        try:
            with instance.db.write() as session:
                row = get_index(session, name)
                user = get_user(session, user_name)
                change = grant_permission if grant else revoke_permission
                changed = change(session, row, user, permission, actor_name=_ACTOR)
        except errors.IndexError_ as exc:
            fail(exc)
            return
        if not changed:
            had = "already has" if grant else "does not have"
            click.echo(f"{user.name!r} {had} {permission!r} on {name!r}: nothing changed")
            return
        done = "granted" if grant else "revoked"
        click.echo(f"{done} {permission!r} on {name!r} for {user.name!r}")

    command.__doc__ = (
        "Give USER a permission on index NAME: read, upload (any project), create,"
        " or review (approve releases for a curated virtual index)."
        if grant
        else "Take a permission on index NAME from USER."
        " Token decisions are cached: the read path notices within 30 s."
    )
    return click.command(verb)(command)


index.add_command(_permission_command(True))
index.add_command(_permission_command(False))


@index.command("permissions")
@click.argument("name")
@instance_options
def index_permissions_list(name: str, settings: Settings) -> None:
    """Show whether an index is private, its create policy and every grant on it."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            row = get_index(session, name)
            click.echo(
                f"index {row.name}: {'private' if row.private else 'public'},"
                f" create policy {row.create_policy}"
            )
            for grant in list_permissions(session, row):
                click.echo(f"{grant.user}\t{grant.permission}\t{grant.created_at:%Y-%m-%d}")
    except errors.IndexError_ as exc:
        fail(exc)
