"""The ``tilsit`` command line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import select

from tilsit.config import SETTINGS, InvalidSetting, Settings, load_settings
from tilsit.db.models import FileRow, IndexRow, UserRow
from tilsit.index import errors
from tilsit.index.manage import (
    create_index,
    create_user,
    delete_file,
    delete_project,
    delete_release,
    get_index,
    get_user,
    set_yanked,
)
from tilsit.index.permissions import set_visibility
from tilsit.instance import Instance, open_instance
from tilsit.trust.mirror import root_text

F = TypeVar("F", bound=Callable[..., Any])


def instance_options(func: F) -> F:
    """--data and --config, accepted by every command that opens an instance."""

    @click.option(
        "--data",
        "data",
        type=click.Path(path_type=Path),
        default=None,
        help="Data directory (setting: data).",
    )
    @click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path, exists=True),
        default=None,
        help="TOML settings file (or TILSIT_CONFIG).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, data: Path | None, config: Path | None, **kwargs: Any) -> Any:
        try:
            settings = load_settings(config, {"data": data})
        except InvalidSetting as exc:
            raise click.UsageError(str(exc)) from exc
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def _open(settings: Settings) -> Instance:
    instance = open_instance(settings)
    # Release database connections when the command ends, however it ends.
    click.get_current_context().call_on_close(instance.close)
    return instance


def _fail(exc: errors.IndexError_) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


@click.group()
@click.version_option(package_name="tilsit")
def main() -> None:
    """tilsit: a Python package index you run yourself."""


def _secure_secrets(settings: Settings, instance: Instance) -> None:
    """Tighten secret files an older tilsit (or a hand) left readable; stop if one cannot be."""
    from tilsit.store.private import LooseSecretMode, tighten

    files = instance.db.secret_files()
    config = next((Path(s) for s in settings.sources if not s.startswith("TILSIT_")), None)
    if config is not None and _config_holds_secrets(config):
        files.append(config)
    try:
        fixes = tighten(files, [settings.outbox_dir])
    except LooseSecretMode as exc:
        instance.close()
        raise click.ClickException(str(exc)) from exc
    for fix in fixes:
        click.echo(f"tightened {fix}", err=True)


def _config_holds_secrets(path: Path) -> bool:
    import tomllib

    with path.open("rb") as fh:
        document = tomllib.load(fh)
    table = document.get("tilsit", document)
    url = str(table.get("database_url", table.get("database-url", "")))
    password = table.get("smtp_password", table.get("smtp-password", ""))
    # A database URL names its password between "user:" and "@".
    return bool(password) or ("@" in url and ":" in url.split("://", 1)[-1].split("@", 1)[0])


@main.command()
@click.option("--host", default=None, help="Listen address (setting: host).")
@click.option("--port", type=int, default=None, help="Listen port (setting: port).")
@click.option("--workers", type=int, default=None, help="Worker processes (setting: workers).")
@click.option("--tls-cert", default=None, help="PEM certificate for HTTPS.")
@click.option("--tls-key", default=None, help="PEM private key for HTTPS.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Data directory.")
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="TOML settings file (or TILSIT_CONFIG).",
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    data: Path | None,
    config: Path | None,
) -> None:
    """Run the server (SQLite and ./tilsit-data unless configured otherwise)."""
    import uvicorn

    from tilsit.web.app import TilsitApp
    from tilsit.web.bodies import bounded
    from tilsit.web.hosts import mail_links_warning
    from tilsit.web.reason import install
    from tilsit.web.server import server_options

    try:
        settings = load_settings(
            config,
            {
                "host": host,
                "port": port,
                "workers": workers,
                "tls_cert": tls_cert,
                "tls_key": tls_key,
                "data": data,
            },
        )
    except InvalidSetting as exc:
        raise click.UsageError(str(exc)) from exc
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    instance = open_instance(settings)
    _secure_secrets(settings, instance)
    scheme = "https" if settings.tls_cert else "http"
    origin = f"{scheme}://{settings.host}:{settings.port}"
    data_dir = settings.data.resolve()
    tilsit = _how_to_run_tilsit()
    click.echo(
        f"tilsit {instance.settings.default_index!r} index: {origin}/simple/ (uploads: {origin}/legacy/)\n"
        f"data directory: {data_dir}\n\n"
        "Next, in another shell, make a user and an upload token:\n"
        f"  {tilsit} user create alice --data {data_dir}\n"
        f"  {tilsit} token create --user alice --data {data_dir}\n"
        "then upload and install:\n"
        f"  twine upload --repository-url {origin}/legacy/ -u __token__ -p <token> dist/*\n"
        f"  pip install --index-url {origin}/simple/ <project>\n\n"
        f"Web pages: {origin}/ (sign-up at /account/register). An administrator:\n"
        f"  {tilsit} user create root --admin --password --data {data_dir}\n"
        "Signed tree (TUF): pin this root, then check any copy of the index end to end:\n"
        f"  {settings.tree_dir.resolve() / settings.default_index / 'tuf' / '1.root.json'}\n"
        f"  {tilsit} verify {origin}/{settings.default_index}/ --root <that file>\n"
    )
    if mail := mail_links_warning(settings):
        click.echo(f"warning: {mail}\n")
    install()
    cert, key = settings.tls_cert or None, settings.tls_key or None
    if settings.workers > 1:
        instance.close()
        # Each worker builds its own instance from the same settings, passed by environment.
        os.environ.update(
            {f"TILSIT_{s.name.upper()}": str(getattr(settings, s.name)) for s in SETTINGS}
        )
        uvicorn.run(
            "tilsit.web.main:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            access_log=settings.access_log,
            ssl_certfile=cert,
            ssl_keyfile=key,
            **server_options(settings),
        )
        return
    uvicorn.run(
        bounded(TilsitApp(instance), settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
        ssl_certfile=cert,
        ssl_keyfile=key,
        **server_options(settings),
    )


def _how_to_run_tilsit() -> str:
    """The command to print in hints: plain ``tilsit`` only when PATH finds this very one."""
    import shutil

    me = Path(sys.argv[0]).resolve()
    found = shutil.which("tilsit")
    if found and Path(found).resolve() == me:
        return "tilsit"
    if me.name == "tilsit" and me.is_file():
        return str(me)
    return f"{sys.executable} -m tilsit"


@main.group()
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
@click.option("--upstream-username", default=None, help="User name for the upstream.")
@click.option(
    "--upstream-password",
    default=None,
    help="Password or token for the upstream (stored in the database).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="PEM CA bundle that the upstream's TLS certificate must chain to.",
)
@click.option(
    "--upstream-root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Mirror: the origin's TUF root (1.root.json) to verify it against"
    " (default: trust the origin's root on the first sync).",
)
@click.option(
    "--ttl",
    type=int,
    default=None,
    help="Proxy: seconds a fetched project page is served before revalidation (default 600).",
)
@click.option(
    "--interval",
    type=int,
    default=None,
    help="Mirror: seconds between syncs inside `tilsit serve` (default: no schedule).",
)
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
    upstream_username: str | None,
    upstream_password: str | None,
    ca_bundle: Path | None,
    upstream_root: Path | None,
    ttl: int | None,
    interval: int | None,
    private: bool,
    create_policy: str | None,
    settings: Settings,
) -> None:
    """Create an index, served at /NAME/simple/: hosted, or --mirror / --proxy of URL."""
    # In a private index every user who may create a project may also probe its names
    # (a name that exists is refused), so only listed users create unless told otherwise.
    create_policy = create_policy or ("listed" if private else "anyone")
    if mirror_url and proxy_url:
        raise click.UsageError("--mirror and --proxy exclude each other")
    if upstream_root is not None and not mirror_url:
        raise click.UsageError("--upstream-root is for --mirror indexes")
    kind = "mirror" if mirror_url else "proxy" if proxy_url else "hosted"
    options: dict[str, object] = {}
    if kind != "hosted":
        options["upstream"] = mirror_url or proxy_url
        if upstream_username is not None or upstream_password is not None:
            options["auth"] = {
                "username": upstream_username or "__token__",
                "password": upstream_password or "",
            }
        if ca_bundle is not None:
            options["ca_bundle"] = str(ca_bundle.resolve())
        if ttl is not None:
            options["ttl"] = ttl
        if interval is not None:
            options["interval"] = interval
        if upstream_root is not None:
            try:
                options["upstream_root"] = root_text(upstream_root)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--upstream-root") from exc
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            created = create_index(session, name, kind, actor="cli", options=options)
            set_visibility(
                session, created, private=private, create_policy=create_policy, actor_name="cli"
            )
    except errors.IndexError_ as exc:
        _fail(exc)
    instance.renderer.catch_up()
    where = f": uploads to /{name}/legacy/" if kind == "hosted" else f" of {options['upstream']}"
    access = f" (private, create policy {create_policy})" if private else ""
    click.echo(f"created {kind} index {name!r} at /{name}/simple/{where}{access}")


@index.command("list")
@instance_options
def index_list(settings: Settings) -> None:
    """List indexes with their kind and last serial."""
    instance = _open(settings)
    with instance.db.read() as session:
        for row in session.scalars(select(IndexRow).order_by(IndexRow.name)):
            default = " (default)" if row.name == settings.default_index else ""
            click.echo(f"{row.name}\t{row.kind}\tserial {row.last_serial}{default}")


@main.group()
def user() -> None:
    """Manage users."""


def _new_password(ask: bool, from_stdin: bool, name: str, email: str) -> str | None:
    """A checked argon2 hash of a password typed (hidden, twice) or read from stdin."""
    from tilsit.auth.passwords import WeakPassword, check_new_password, hash_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif ask:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        return None
    try:
        check_new_password(password, name=name, email=email)
    except WeakPassword as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    return hash_password(password)


_password_options = [
    click.option("--password", "ask_password", is_flag=True, help="Prompt for a password."),
    click.option("--password-stdin", is_flag=True, help="Read the password from stdin."),
]


@user.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May upload to and manage every project.")
@click.option("--email", default=None, help="The user's email address (taken as verified).")
@_password_options[0]
@_password_options[1]
@instance_options
def user_create(
    name: str,
    admin: bool,
    email: str | None,
    ask_password: bool,
    password_stdin: bool,
    settings: Settings,
) -> None:
    """Create a user (who can then be given tokens, or log in with a password)."""
    from tilsit.auth.accounts import AccountError, normalise_email

    try:
        address = normalise_email(email) if email else None
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    hashed = _new_password(ask_password, password_stdin, name, address or "")
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            row = create_user(session, name, admin=admin)
            if address:
                taken = session.scalars(select(UserRow.id).where(UserRow.email == address))
                if taken.first() is not None:
                    raise errors.IndexError_(f"The address {address} belongs to another user")
                # An administrator vouches for the address; no link is mailed.
                row.email, row.email_verified_at = address, datetime.now(UTC)
            if hashed:
                row.password_hash, row.password_changed_at = hashed, datetime.now(UTC)
    except errors.IndexError_ as exc:
        _fail(exc)
    click.echo(f"created user {name!r}; next: tilsit token create --user {name}")


@user.command("set-password")
@click.argument("name")
@_password_options[1]
@instance_options
def user_set_password(name: str, password_stdin: bool, settings: Settings) -> None:
    """Set a user's password (prompted twice, hidden) and end their web sessions."""
    from tilsit.auth.audit import record_event
    from tilsit.auth.sessions import end_user_sessions

    instance = _open(settings)
    with instance.db.read() as session:
        found = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if found is None:
        _fail(errors.IndexError_(f"There is no user {name!r}"))
        return
    hashed = _new_password(True, password_stdin, name, found.email or "")
    with instance.db.write() as session:
        row = session.get(UserRow, found.id)
        assert row is not None and hashed is not None
        row.password_hash, row.password_changed_at = hashed, datetime.now(UTC)
        end_user_sessions(session, row)
        record_event(session, "password.changed", actor_name="cli", user=row)
    click.echo(f"password of {name!r} set; their web sessions were ended")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="Owner of the token.")
@click.option("--project", "projects", multiple=True, help="Limit to this project (repeatable).")
@click.option("--index", "index_name", default=None, help="Limit to this index.")
@click.option("--expires", default=None, help="30d, 12h, 90m or an ISO date; default: never.")
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--bulk",
    is_flag=True,
    help="Its uploads skip the upload rate limits (project_create_rate), to load a whole"
    " dependency closure; see docs/accounts.md.",
)
@instance_options
def token_create(
    user_name: str,
    projects: tuple[str, ...],
    index_name: str | None,
    expires: str | None,
    description: str,
    bulk: bool,
    settings: Settings,
) -> None:
    """Create an API token and print its secret (shown only this once)."""
    from tilsit.auth.token_admin import issue_token
    from tilsit.auth.tokens import parse_expiry
    from tilsit.spec.names import normalize

    instance = _open(settings)
    try:
        expires_at = parse_expiry(expires) if expires else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        with instance.db.write() as session:
            owner = get_user(session, user_name)
            scope_index = get_index(session, index_name) if index_name else None
            new = issue_token(
                session,
                owner,
                index=scope_index,
                projects=[normalize(p) for p in projects] or None,
                expires_at=expires_at,
                description=description,
                actor_name="cli",
                bulk=bulk,
            )
    except errors.IndexError_ as exc:
        _fail(exc)
    click.echo(new.secret)


def _yank(
    project: str,
    version: str,
    index_name: str | None,
    reason: str,
    yanked: bool,
    settings: Settings,
) -> None:
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            idx = get_index(session, index_name or settings.default_index)
            set_yanked(session, idx, project, version, yanked=yanked, reason=reason, actor="cli")
    except errors.IndexError_ as exc:
        _fail(exc)
    instance.renderer.catch_up()
    click.echo(f"{'yanked' if yanked else 'unyanked'} {project} {version}")


@main.command()
@click.argument("project")
@click.argument("version")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@click.option("--reason", default="", help="Why, shown to installers (PEP 592).")
@instance_options
def yank(
    project: str, version: str, index_name: str | None, reason: str, settings: Settings
) -> None:
    """Yank a release: installers skip it unless it is pinned exactly."""
    _yank(project, version, index_name, reason, True, settings)


@main.command()
@click.argument("project")
@click.argument("version")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@instance_options
def unyank(project: str, version: str, index_name: str | None, settings: Settings) -> None:
    """Undo a yank."""
    _yank(project, version, index_name, "", False, settings)


@main.command()
@click.argument("what", type=click.Choice(["file", "release", "project"]))
@click.argument("args", nargs=-1, required=True)
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@instance_options
def delete(what: str, args: tuple[str, ...], index_name: str | None, settings: Settings) -> None:
    """Delete a file (FILENAME), a release (PROJECT VERSION) or a project (PROJECT).

    Deleted filenames can never be uploaded again; blobs are kept.
    """
    wanted = {"file": 1, "release": 2, "project": 1}[what]
    if len(args) != wanted:
        raise click.UsageError(f"delete {what} takes {wanted} argument(s)")
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            idx = get_index(session, index_name or settings.default_index)
            if what == "file":
                delete_file(session, idx, args[0], actor="cli")
            elif what == "release":
                delete_release(session, idx, args[0], args[1], actor="cli")
            else:
                delete_project(session, idx, args[0], actor="cli")
    except errors.IndexError_ as exc:
        _fail(exc)
    instance.renderer.catch_up()
    click.echo(f"deleted {what} {' '.join(args)}")


@main.command()
@instance_options
def rebuild(settings: Settings) -> None:
    """Re-render the whole static tree from the database."""
    instance = _open(settings)
    serial = instance.renderer.rebuild()
    click.echo(f"rebuilt the tree at serial {serial}")


@main.command()
@click.option(
    "--grace",
    type=int,
    default=3600,
    show_default=True,
    help="Only reap orphan blobs older than this many seconds (an upload in flight"
    " writes its blob before its row).",
)
@click.option("--dry-run", is_flag=True, help="Report orphans without deleting them.")
@click.option("--verify", is_flag=True, help="Also re-hash every blob.")
@instance_options
def fsck(grace: int, dry_run: bool, verify: bool, settings: Settings) -> None:
    """Check blobs against rows: report missing blobs, reap orphans."""
    import hashlib

    instance = _open(settings)
    with instance.db.read() as session:
        wanted: dict[str, str] = {}
        for filename, sha256, metadata_sha256, cached in session.execute(
            select(FileRow.filename, FileRow.sha256, FileRow.metadata_sha256, FileRow.cached)
        ):
            if cached:  # a proxy's file not fetched yet has no blob, rightly
                wanted[sha256] = filename
            if metadata_sha256 is not None:
                wanted.setdefault(metadata_sha256, f"{filename} (core metadata)")
    problems = 0
    stored = set(instance.blobs)
    for sha256, what in sorted(wanted.items(), key=lambda kv: kv[1]):
        if sha256 not in stored:
            problems += 1
            click.echo(f"MISSING blob {sha256} for {what}")
    cutoff = datetime.now(UTC) - timedelta(seconds=grace)
    reaped = 0
    for sha256 in sorted(stored - wanted.keys()):
        path = instance.blobs.path(sha256)
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if mtime > cutoff:
            click.echo(f"orphan blob {sha256} is younger than the grace period; kept")
            continue
        reaped += 1
        if dry_run:
            click.echo(f"orphan blob {sha256} (would reap)")
        else:
            instance.blobs.delete(sha256)
            click.echo(f"reaped orphan blob {sha256}")
    if verify:
        for sha256 in sorted(stored & wanted.keys()):
            digest = hashlib.sha256()
            with open(instance.blobs.path(sha256), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                problems += 1
                click.echo(f"CORRUPT blob {sha256} for {wanted[sha256]}")
    click.echo(
        f"fsck: {len(wanted)} blobs referenced, {len(stored)} stored, "
        f"{reaped} orphan(s) {'found' if dry_run else 'reaped'}, {problems} problem(s)"
    )
    if problems:
        sys.exit(1)


@main.command("nginx-config")
@click.option("--listen", default="80", show_default=True, help="nginx listen address.")
@click.option(
    "--upstream",
    default=None,
    help="tilsit's own server, for uploads and /_/ (default: host:port from settings).",
)
@click.option("--no-upstream", is_flag=True, help="Serve the tree only; uploads get 405.")
@click.option(
    "--standalone",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Print a whole nginx.conf with its pid and temp files under RUN_DIR.",
)
@instance_options
def nginx_config(
    listen: str, upstream: str | None, no_upstream: bool, run_dir: Path | None, settings: Settings
) -> None:
    """Print an nginx configuration that serves this data directory's tree directly."""
    from tilsit.nginxconf import render_nginx_config, render_standalone

    target = None if no_upstream else (upstream or f"{settings.host}:{settings.port}")
    tree = settings.tree_dir.resolve()
    instance = _open(settings)
    with instance.db.read() as session:
        # Proxy indexes are answered by tilsit, not from the tree (TTLs, first fetches).
        proxies = list(
            session.scalars(
                select(IndexRow.name).where(IndexRow.kind == "proxy").order_by(IndexRow.name)
            )
        )
    try:
        if run_dir is not None:
            text = render_standalone(
                tree,
                listen,
                settings.default_index,
                target,
                run_dir=run_dir.resolve(),
                page_max_age=settings.page_max_age,
                max_upload_size=settings.max_upload_size,
                proxy_indexes=proxies,
            )
        else:
            text = render_nginx_config(
                tree,
                listen,
                settings.default_index,
                target,
                page_max_age=settings.page_max_age,
                max_upload_size=settings.max_upload_size,
                proxy_indexes=proxies,
            )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(text, nl=False)


@main.command("settings")
def settings_doc() -> None:
    """List every setting with its environment variable, default and meaning."""
    for s in SETTINGS:
        click.echo(f"{s.name}  (TILSIT_{s.name.upper()}, default {s.default!s})\n    {s.help}")


# Command groups kept in their own modules. They import instance_options from
# here, so they come last; importing the first five registers their commands.
from tilsit import access_cli, audit_cli, trust_cli, user_cli, verify_cli  # noqa: E402, F401
from tilsit.publishers_cli import publisher  # noqa: E402
from tilsit.upstream.cli import mirror  # noqa: E402

main.add_command(mirror)
main.add_command(publisher)
