"""``tilsit serve`` and ``tilsit init``: run the server, make a data directory."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from tilsit.cli.options import (
    SAME_FILESYSTEM,
    how_to_run_tilsit,
    instance_options,
)
from tilsit.config import SETTINGS, Settings, load_settings, read_config_table
from tilsit.db.engine import Database
from tilsit.instance import Instance, open_instance, written_paths
from tilsit.operator import (
    ConfigError,
    NotWritable,
    OperatorError,
    check_owner,
    check_port,
    check_tls_files,
    check_writable,
)
from tilsit.render.legacy import base_url_warning
from tilsit.store.leftovers import reap_leftovers
from tilsit.store.private import LooseSecretMode, tighten
from tilsit.trust.keys import keys_dir, trust_dir
from tilsit.web.app import TilsitApp
from tilsit.web.bodies import bounded
from tilsit.web.hosts import mail_links_warning
from tilsit.web.metrics import MULTIPROCESS_ENV, fresh_multiprocess_dir
from tilsit.web.reason import install
from tilsit.web.server import server_options

__all__ = ["init", "serve"]


def _secure_secrets(settings: Settings, instance: Instance) -> None:
    """Tighten secret files an older tilsit (or a hand) left readable; stop if one cannot be."""
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
    # The S3 store's secret key (issue 15), when kept in the file.
    password = password or table.get("s3_secret_access_key", table.get("s3-secret-access-key", ""))
    # A database URL names its password between "user:" and "@".
    return bool(password) or ("@" in url and ":" in url.split("://", 1)[-1].split("@", 1)[0])


@click.command()
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
    reap_leftovers(settings.tmp_dir)
    scheme = "https" if settings.tls_cert else "http"
    origin = f"{scheme}://{settings.host}:{settings.port}"
    data_dir = settings.data.resolve()
    tilsit = how_to_run_tilsit()
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
        # Each worker keeps its /_/metrics counters in files there; a scrape sums them all.
        os.environ[MULTIPROCESS_ENV] = str(fresh_multiprocess_dir(settings.tmp_dir))
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

    # Blobs in an object store never pass through a rename on this disk.
    local_blobs = (settings.blob_dir,) if settings.blob_store == "fs" else ()
    for target in (settings.tree_dir, *local_blobs):
        fd, name = tempfile.mkstemp(dir=settings.tmp_dir, prefix=".probe-")
        os.close(fd)
        moved = target / Path(name).name
        try:
            os.replace(name, moved)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            raise NotWritable(SAME_FILESYSTEM.format(path=target)) from None
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


@click.command()
@instance_options
def init(settings: Settings) -> None:
    """Make a new data directory: database, default index and TUF keys; print what it made.

    Every command but this and `serve` refuses to run where no data directory is.
    """
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
    click.echo(f"next: {how_to_run_tilsit()} serve --data {data.resolve()}")
