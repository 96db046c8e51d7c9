"""The ``tilsit`` command line."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import select

from tilsit.config import SETTINGS, Settings, load_settings, read_config_table
from tilsit.db.engine import Database
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
from tilsit.instance import Instance, open_instance, written_paths
from tilsit.operator import (
    ConfigError,
    NotWritable,
    OperatorError,
    check_owner,
    check_port,
    check_tls_files,
    check_writable,
    unwritable_message,
)
from tilsit.trust.mirror import root_text
from tilsit.upstream.cli_options import (
    FILTER_PARAMS,
    UPSTREAM_PARAMS,
    filter_options,
    filters_document,
    given_filters,
    read_password_stdin,
    upstream_changes,
    upstream_options,
)

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
        # Not exists=True: a missing file is named in one line by load_settings.
        type=click.Path(path_type=Path),
        default=None,
        help="TOML settings file (or TILSIT_CONFIG).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, data: Path | None, config: Path | None, **kwargs: Any) -> Any:
        # A bad settings file or variable is an OperatorError: main prints it in one line.
        settings = load_settings(config, {"data": data})
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


class _OneLineLog(logging.Handler):
    """``error: message`` on stderr: what tilsit logs while a command runs, without
    tracebacks (the server's log keeps them; an operator at a prompt needs the line)."""

    def emit(self, record: logging.LogRecord) -> None:
        # click.echo finds the stderr of the moment (a test runner swaps it).
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def _log_in_one_line() -> None:
    logger = logging.getLogger("tilsit")
    if not any(isinstance(h, _OneLineLog) for h in logger.handlers):
        logger.addHandler(_OneLineLog(logging.WARNING))


def _open(settings: Settings, *, owner: bool = False) -> Instance:
    """The instance every command but serve and init works on: it must exist already.

    With ``owner`` (``rebuild``), the command's base_url becomes the tree's; it
    then renders the whole tree itself.
    """
    _log_in_one_line()
    instance = open_instance(settings, create=False, owner=owner, rerender=not owner)
    # Release database connections when the command ends, however it ends.
    context = click.get_current_context()
    context.call_on_close(instance.close)
    # Run first (last registered): a render this command's change could not make is
    # said here too, not only in /_/health, so the operator sees it at once.
    context.call_on_close(lambda: _warn_render_failures(instance))
    return instance


def _warn_render_failures(instance: Instance) -> None:
    failures = instance.renderer.render_failures()
    if not failures:
        return
    first = failures[0]
    more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    click.echo(
        f"warning: {first.key.rstrip('/')} could not be rendered ({first.error}){more};"
        " tilsit serve retries every few minutes (tilsit rebuild now), /_/health lists them",
        err=True,
    )


def _fail(exc: errors.IndexError_) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


class _OperatorGroup(click.Group):
    """The top command: an operator's mistake, raised anywhere below, ends in one line.

    Commands raise :class:`OperatorError` (a bad setting, no data directory, a
    port in use, ...) and do not catch it themselves; a PermissionError that
    no check foresaw still names its file and whose it is, never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperatorError as exc:
            raise _OneLine(str(exc)) from None
        except OSError as exc:
            # What no check foresaw: a file made unwritable, or a disk that filled, while
            # the command ran. Named with its file; any other OSError is a bug: traceback.
            if exc.filename is None or exc.errno not in _OPERATOR_ERRNOS:
                raise
            path = Path(os.fsdecode(exc.filename))
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _OneLine(f"{path}: {exc.strerror}; free space there") from None
            if exc.errno == errno.EXDEV:  # name the target: the source is in tmp
                target = Path(os.fsdecode(exc.filename2 or exc.filename))
                raise _OneLine(_SAME_FILESYSTEM.format(path=target)) from None
            raise _OneLine(unwritable_message(path, "cannot be written")) from None


_OPERATOR_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EXDEV,
}
_SAME_FILESYSTEM = (
    "{path} is on another filesystem than the data directory's tmp; tilsit renames files"
    " from tmp into the tree and blobs (and hard-links blobs into the tree), so data/tmp,"
    " data/tree and data/blobs must be on one filesystem"
)


class _OneLine(click.ClickException):
    """Printed as ``error: <message>`` on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(cls=_OperatorGroup)
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
    except LooseSecretMode:
        instance.close()
        raise
    for fix in fixes:
        click.echo(f"tightened {fix}", err=True)


def _config_holds_secrets(path: Path) -> bool:
    table = read_config_table(path)
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
    type=click.Path(path_type=Path),  # a missing file: named in one line by load_settings
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

    from tilsit.render.legacy import base_url_warning
    from tilsit.web.app import TilsitApp
    from tilsit.web.bodies import bounded
    from tilsit.web.hosts import mail_links_warning
    from tilsit.web.reason import install
    from tilsit.web.server import server_options

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
    instance = _open_for_serving(settings)
    _secure_secrets(settings, instance)
    # Temp files of a killed upload, sync or render (fsck reaps them too).
    from tilsit.store.leftovers import reap_leftovers

    reap_leftovers(settings.tmp_dir)
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
    if address := base_url_warning(settings.base_url):
        click.echo(f"warning: {address}\n")
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


def _open_for_serving(settings: Settings) -> Instance:
    """Check what the operator may have got wrong, then open (or make) the instance.

    Everything that can be checked before anything is written is checked first
    (TLS files, the port, who may write the data directory), so a mistake
    changes nothing; the port is free when the banner says where to connect.
    """
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError(
            "tls_cert and tls_key go together: give both (--tls-cert and --tls-key) or neither"
        )
    if settings.tls_cert:
        check_tls_files(settings.tls_cert, settings.tls_key)
    check_port(settings.host, settings.port)
    _check_data_dir(settings)
    instance = open_instance(settings, create=True)
    try:
        # Again, now that the tree's index directories exist.
        check_writable(written_paths(settings))
        _check_renames(settings)
    except OperatorError:
        instance.close()
        raise
    return instance


def _check_renames(settings: Settings) -> None:
    """Move a probe file from tmp into the tree and the blobs, as every write does.

    A tree or blob directory on another mount (even a bind mount of the same disk)
    fails every page with EXDEV after its commit; found here, it stops start-up.
    """
    import tempfile

    for target in (settings.tree_dir, settings.blob_dir):
        fd, name = tempfile.mkstemp(dir=settings.tmp_dir, prefix=".probe-")
        os.close(fd)
        moved = target / Path(name).name
        try:
            os.replace(name, moved)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            raise NotWritable(_SAME_FILESYSTEM.format(path=target)) from None
        finally:
            Path(name).unlink(missing_ok=True)
            moved.unlink(missing_ok=True)


def _check_data_dir(settings: Settings) -> None:
    """The data directory is ours to write, or (when missing) can be made; a server
    database answers. Checked before anything is made, so a mistake leaves nothing."""
    if Database.sqlite_path(settings.db_url) is None:
        db = Database(settings.db_url)
        try:
            db.check_connection()
        finally:
            db.dispose()
    data = settings.data
    if data.is_dir():
        check_owner(data)
        check_writable(written_paths(settings))
        return
    parent = next((p for p in data.absolute().parents if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise NotWritable(
            f"data directory {data} does not exist and {parent} is not writable, so it cannot"
            " be made; create it for the user that runs tilsit (mkdir, chown), or choose"
            " another with --data"
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


@main.command()
@instance_options
def init(settings: Settings) -> None:
    """Make a new data directory: database, default index and TUF keys; print what it made.

    Every command but this and `serve` refuses to run where no data directory is.
    """
    from tilsit.trust.keys import keys_dir, trust_dir

    data = settings.data
    database = Database.sqlite_path(settings.db_url)
    had = {
        "data": data.is_dir(),
        "keys": (trust_dir(data) / "1.root.json").exists(),
        "database": database.is_file() if database is not None else False,
    }
    _check_data_dir(settings)
    instance = open_instance(settings, create=True)
    click.get_current_context().call_on_close(instance.close)
    made = "made" if not had["data"] else "kept (it existed)"
    click.echo(f"data directory {data.resolve()}: {made}")
    db_made = "made" if database is not None and not had["database"] else "schema up to date"
    click.echo(f"database {instance.db.display_url}: {db_made}")
    keys_made = "made" if not had["keys"] else "kept (they existed)"
    click.echo(f"TUF keys in {keys_dir(data).resolve()}: {keys_made}")
    click.echo(f"static tree {settings.tree_dir.resolve()}, blobs {settings.blob_dir.resolve()}")
    click.echo(f"default index {settings.default_index!r}: /simple/ (uploads to /legacy/)")
    click.echo(f"next: {_how_to_run_tilsit()} serve --data {data.resolve()}")


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
    from tilsit.index.upstream_options import public_url
    from tilsit.upstream.filters import InvalidFilter

    # In a private index every user who may create a project may also probe its names
    # (a name that exists is refused), so only listed users create unless told otherwise.
    create_policy = create_policy or ("listed" if private else "anyone")
    if mirror_url and proxy_url:
        raise click.UsageError("--mirror and --proxy exclude each other")
    if upstream_root is not None and not mirror_url:
        raise click.UsageError("--upstream-root is for --mirror indexes")
    kind = "mirror" if mirror_url else "proxy" if proxy_url else "hosted"
    upstream_values = {k: values[k] for k in UPSTREAM_PARAMS}
    filter_values = {k: values[k] for k in FILTER_PARAMS}
    if kind == "hosted" and (
        given_filters(filter_values)
        or filter_values["timeout"] is not None
        or any(v not in (None, False) for v in upstream_values.values())
    ):
        raise click.UsageError("upstream settings and filters are for --mirror and --proxy indexes")
    options: dict[str, object] = {}
    try:
        if kind != "hosted":
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
        _fail(exc)
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
            options = dict(created.options)
    except errors.IndexError_ as exc:
        _fail(exc)
    instance.renderer.catch_up()
    where = (
        f": uploads to /{name}/legacy/"
        if kind == "hosted"
        else f" of {public_url(str(options['upstream']))}"
    )
    access = (
        f" (private, create policy {create_policy})"
        if private
        else f" (public, create policy {create_policy})"
    )
    click.echo(f"created {kind} index {name!r} at /{name}/simple/{where}{access}")
    if kind == "mirror" and "interval" in options:
        filters = options.get("filters") or {}
        what = f"filters {json.dumps(filters, sort_keys=True)}" if filters else "no filters"
        click.echo(f"scheduled: synced every {options['interval']} s by `tilsit serve`, {what}")


@index.command("list")
@instance_options
def index_list(settings: Settings) -> None:
    """List indexes: name, kind, public or private, last serial, upstream (no credentials)."""
    from tilsit.index.upstream_options import public_url

    instance = _open(settings)
    with instance.db.read() as session:
        for row in session.scalars(select(IndexRow).order_by(IndexRow.name)):
            access = "private" if row.private else "public"
            upstream = (row.options or {}).get("upstream")
            fields = [row.name, row.kind, access, f"serial {row.last_serial}"]
            if upstream:
                fields.append(public_url(str(upstream)))
            default = " (default)" if row.name == settings.default_index else ""
            click.echo("\t".join(fields) + default)


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
    from tilsit.render.base_url import record_base_url

    instance = _open(settings, owner=True)
    serial = instance.renderer.rebuild()
    # Only now does every page carry this base_url (see tilsit.render.base_url).
    record_base_url(settings.data, instance.renderer.base_url)
    click.echo(f"rebuilt the tree at serial {serial}")


@main.command()
@click.option(
    "--grace",
    type=int,
    default=3600,
    show_default=True,
    help="Only reap orphan blobs and temp files older than this many seconds (a mirror"
    " sync stores its blobs before its rows; 0 only when nothing else writes).",
)
@click.option("--dry-run", is_flag=True, help="Report orphans without deleting them.")
@click.option("--verify", is_flag=True, help="Also re-hash every blob.")
@instance_options
def fsck(grace: int, dry_run: bool, verify: bool, settings: Settings) -> None:
    """Check blobs against rows: report missing blobs, reap orphans and temp leftovers."""
    import hashlib

    from sqlalchemy import or_
    from sqlalchemy.orm import Session

    from tilsit.store.leftovers import reap_leftovers

    def referenced(session: Session, among: list[str] | None = None) -> dict[str, str]:
        """sha256 -> what names it: cached files' blobs and core-metadata blobs."""
        query = select(FileRow.filename, FileRow.sha256, FileRow.metadata_sha256, FileRow.cached)
        if among is not None:
            query = query.where(or_(FileRow.sha256.in_(among), FileRow.metadata_sha256.in_(among)))
        named: dict[str, str] = {}
        for filename, sha256, metadata_sha256, cached in session.execute(query):
            if cached:  # a proxy's file not fetched yet has no blob, rightly
                named[sha256] = filename
            if metadata_sha256 is not None:
                named.setdefault(metadata_sha256, f"{filename} (core metadata)")
        return named

    instance = _open(settings)
    # Taken before the rows are read: a blob put (or reused) after it is never reaped.
    cutoff = (datetime.now(UTC) - timedelta(seconds=grace)).timestamp()
    with instance.db.read() as session:
        wanted = referenced(session)
    problems = 0
    stored = set(instance.blobs)
    for sha256, what in sorted(wanted.items(), key=lambda kv: kv[1]):
        if sha256 not in stored:
            problems += 1
            click.echo(f"MISSING blob {sha256} for {what}")
    candidates = []
    for sha256 in sorted(stored - wanted.keys()):
        try:
            mtime = instance.blobs.path(sha256).stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime > cutoff:
            click.echo(f"orphan blob {sha256} is younger than the grace period; kept")
        else:
            candidates.append(sha256)
    reaped = 0
    if dry_run:
        for sha256 in candidates:
            reaped += 1
            click.echo(f"orphan blob {sha256} (would reap)")
    elif candidates:
        # The rows read above may be stale: an upload stores its blob, then commits its
        # row, all under the writer lock. Under that lock no row is half-committed, so
        # each candidate is checked again there before it goes (in batches, so that
        # uploads wait for one batch at most).
        click.echo(f"checking {len(candidates)} orphan blob(s) again under the writer lock")
        for start in range(0, len(candidates), 200):
            batch = candidates[start : start + 200]
            with instance.db.write() as session:
                named = referenced(session, batch)
                for sha256 in batch:
                    if sha256 in named:
                        click.echo(f"blob {sha256} is now named by {named[sha256]}; kept")
                    elif instance.blobs.reap(sha256, cutoff):
                        reaped += 1
                        click.echo(f"reaped orphan blob {sha256}")
                    else:
                        click.echo(f"blob {sha256} was stored again meanwhile; kept")
    if verify:
        for sha256 in sorted(stored & wanted.keys()):
            digest = hashlib.sha256()
            with open(instance.blobs.path(sha256), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                problems += 1
                click.echo(f"CORRUPT blob {sha256} for {wanted[sha256]}")
    leftovers = reap_leftovers(settings.tmp_dir, grace, dry_run=dry_run)
    for name in leftovers:
        click.echo(
            f"temp file {settings.tmp_dir / name} left by a killed process"
            f" {'(would reap)' if dry_run else 'reaped'}"
        )
    click.echo(
        f"fsck: {len(wanted)} blobs referenced, {len(stored)} stored, "
        f"{reaped} orphan(s) {'found' if dry_run else 'reaped'}, "
        f"{len(leftovers)} temp file(s) {'found' if dry_run else 'reaped'}, {problems} problem(s)"
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
    from tilsit.nginx import render_nginx_config, render_standalone

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
