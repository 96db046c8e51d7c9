"""``tilsit backup|restore``: a consistent copy of an instance and its return.

The database is copied first and the blobs after it: blobs are only ever added,
so every blob the database copy names is already stored when the copy is taken
and lands in the backup. ``MANIFEST.json`` is written last, so a backup cut
short has none and ``restore`` refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy import Connection, create_engine, text

from tilsit.cli.options import instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.store.blobs import BlobStore
from tilsit.store.counted import unwrapped
from tilsit.store.fs import FilesystemBlobStore
from tilsit.trust.keys import keys_dir, trust_dir

__all__ = ["backup", "restore"]

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


class BackupInvalid(click.ClickException):
    """A backup directory that is missing, incomplete or corrupt."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _private_copy(source: Path, target: Path) -> int:
    """Copy a keys or trust directory with owner-only permissions; the files copied."""
    count = 0
    if not source.is_dir():
        return 0
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(mode=0o700, exist_ok=True)
            os.chmod(destination, 0o700)
        elif path.is_file():
            shutil.copyfile(path, destination)
            os.chmod(destination, 0o600)
            count += 1
    return count


def _blob_path(root: Path, sha256: str) -> Path:
    """The filesystem store's layout, so a restored directory is a store as it stands."""
    return root / sha256[:2] / sha256[2:4] / sha256


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise click.ClickException(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin")
    return found


def _named_blobs(connection: Connection) -> dict[str, str]:
    """sha256 -> what names it, read from the database copy (or the dump's snapshot)."""
    named: dict[str, str] = {}
    rows = connection.execute(text("SELECT filename, sha256, metadata_sha256, cached FROM files"))
    for filename, sha256, metadata_sha256, cached in rows:
        if cached:
            named[sha256] = filename
        if metadata_sha256 is not None:
            named.setdefault(metadata_sha256, f"{filename} (core metadata)")
    return named


def _schema_revision(connection: Connection) -> str:
    return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


def _plain_url(url: str) -> str:
    """The libpq spelling of a SQLAlchemy PostgreSQL URL, for pg_dump and pg_restore."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or "no message"


def _pg_dump(url: str, target: Path) -> tuple[dict[str, str], str]:
    """Dump the database and read its blob list and schema revision in one snapshot.

    The snapshot is exported by a repeatable-read transaction that stays open while
    ``pg_dump --snapshot`` runs in it and is then read by the same transaction, so the
    manifest names exactly the blobs the dump names: an upload committed meanwhile is
    in neither.
    """
    engine = create_engine(url)
    try:
        with engine.connect() as base:
            connection = base.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                connection.execute(text("SET TRANSACTION READ ONLY"))
                snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                dumped = subprocess.run(
                    [
                        _pg_tool("pg_dump"),
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "-f",
                        str(target),
                        _plain_url(url),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if dumped.returncode != 0:
                    raise click.ClickException(f"pg_dump failed: {_tail(dumped.stderr)}")
                return _named_blobs(connection), _schema_revision(connection)
    finally:
        engine.dispose()


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@instance_options
def backup(directory: Path, settings: Settings) -> None:
    """Back up the database, keys, trust state and blobs into DIRECTORY."""
    if directory.exists():
        if any(directory.iterdir()):
            raise click.ClickException(f"{directory} is not empty")
        if directory.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise click.ClickException(
                f"{directory} is readable by others; the backup holds private keys (chmod 700)"
            )
    made = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    try:
        _take(directory, settings)
    except BaseException:
        # A half-taken backup is no backup: leave nothing that could be mistaken for one
        # (restore refuses one without its manifest, but a person might not).
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _take(directory: Path, settings: Settings) -> None:
    """The backup itself, in order: the database, keys and trust, blobs, the manifest last."""
    instance = open_instance_for_command(settings)
    url = settings.db_url
    if url.startswith("sqlite"):
        database = directory / "tilsit.db"
        source_path = Database.sqlite_path(url)
        if source_path is None:
            raise click.ClickException(f"cannot read the SQLite path from {url}")
        source = sqlite3.connect(str(source_path))
        target = sqlite3.connect(str(database))
        with target:
            source.backup(target)  # the online backup API: one consistent snapshot
        source.close()
        target.close()
        engine = create_engine(f"sqlite:///{database}")
        try:
            with engine.connect() as connection:
                named, revision = _named_blobs(connection), _schema_revision(connection)
        finally:
            engine.dispose()
    else:
        database = directory / "tilsit.pgdump"
        named, revision = _pg_dump(url, database)
    os.chmod(database, 0o600)
    keys = _private_copy(keys_dir(settings.data), directory / "keys")
    trust = _private_copy(trust_dir(settings.data), directory / "trust")
    blobs: BlobStore = instance.blobs
    manifest_blobs: dict[str, int] = {}
    copied = isinstance(unwrapped(blobs), FilesystemBlobStore)
    for sha256 in sorted(named):
        if not blobs.exists(sha256):
            raise click.ClickException(f"blob {sha256} for {named[sha256]} is missing")
        if copied:
            source_path = blobs.path(sha256)
            destination = _blob_path(directory / "blobs", sha256)
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                os.link(source_path, destination)
            except OSError:
                shutil.copyfile(source_path, destination)
            if _sha256(destination) != sha256:
                raise click.ClickException(f"blob {sha256} in the store is corrupt")
            manifest_blobs[sha256] = destination.stat().st_size
        else:
            # Left in the object store: its size is recorded and checked at restore.
            manifest_blobs[sha256] = blobs.size(sha256)
    files = {
        str(path.relative_to(directory)): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "blobs" not in path.relative_to(directory).parts[:1]
    }
    manifest = {
        "tilsit": version("tilsit"),
        "schema_revision": revision,
        "taken": datetime.now(UTC).isoformat(),
        "database": database.name,
        "blobs_copied": copied,
        "counts": {"blobs": len(manifest_blobs), "keys": keys, "trust": trust},
        "files": files,
        "blobs": manifest_blobs,
    }
    temporary = directory / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.chmod(temporary, 0o600)
    os.replace(temporary, directory / MANIFEST)
    click.echo(f"backed up {len(manifest_blobs)} blobs, {keys} keys, {trust} trust files")


def _read_manifest(directory: Path) -> dict[str, object]:
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupInvalid(f"{directory} has no {MANIFEST}: the backup is incomplete")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise BackupInvalid(f"{MANIFEST} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise BackupInvalid(f"{MANIFEST} is not an object")
    return manifest


def _tables(url: str) -> set[str]:
    """The tables in the target database's ordinary schemas (empty: a new database)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            )
            return {str(name) for (name,) in rows}
    finally:
        engine.dispose()


# One table entry of ``pg_restore --list``: "<id>; <oid> <oid> TABLE <schema> <name> <owner>".
_LISTED_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) ")


def _dumped_tables(dump: Path) -> set[str]:
    listed = subprocess.run(
        [_pg_tool("pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        raise BackupInvalid(f"{dump.name} is not a readable dump: {_tail(listed.stderr)}")
    return {
        f"{match[1]}.{match[2]}"
        for line in listed.stdout.splitlines()
        if (match := _LISTED_TABLE.match(line))
    }


def _check_pg_target(url: str, dump: Path, force: bool) -> bool:
    """Whether the target database holds tables; refuse what restore cannot replace whole."""
    present = _tables(url)
    if not present:
        return False
    name = urlsplit(url).path.lstrip("/")
    if not force:
        raise click.ClickException(
            f"the database {name} is not empty (use --force to replace its contents)"
        )
    # --clean drops only what the dump holds: a table it does not hold would outlive the
    # restore and meet the restored schema half-way, so refuse before changing anything.
    extra = present - _dumped_tables(dump)
    if extra:
        raise click.ClickException(
            f"the database {name} holds tables the backup does not ({', '.join(sorted(extra))}):"
            " drop and create it empty, then restore"
        )
    return True


def _pg_restore(url: str, dump: Path, replace: bool) -> None:
    """Restore the dump in one transaction: it commits whole or leaves the database as it was.

    With ``replace`` the drops of the old tables are in that transaction too.
    """
    clean = ["--clean", "--if-exists"] if replace else []
    restored = subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            *clean,
            "-d",
            _plain_url(url),
            str(dump),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if restored.returncode != 0:
        raise click.ClickException(
            f"pg_restore failed and was rolled back; the database and the data"
            f" directory are unchanged: {_tail(restored.stderr)}"
        )


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Replace a data directory that is not empty.")
@instance_options
def restore(directory: Path, force: bool, settings: Settings) -> None:
    """Restore the backup in DIRECTORY into the (empty) data directory, then rebuild."""
    manifest = _read_manifest(directory)
    files = manifest.get("files")
    blobs = manifest.get("blobs")
    if not isinstance(files, dict) or not isinstance(blobs, dict):
        raise BackupInvalid(f"{MANIFEST} lacks its files or blobs")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise BackupInvalid(f"{name} is missing from the backup")
        if _sha256(path) != digest:
            raise BackupInvalid(f"{name} in the backup is corrupt (sha256 differs)")
    # An older schema is migrated when the restored instance is opened; a newer one
    # (a backup from a later tilsit) is not understood by this one.
    versions = Path(__file__).parent.parent / "db" / "migrations" / "versions"
    known = {path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py")}
    if str(manifest.get("schema_revision")) not in known:
        raise BackupInvalid(
            f"the backup's schema revision {manifest.get('schema_revision')!r} is newer than"
            " this tilsit's; restore with the tilsit version that took it"
        )
    copied = bool(manifest.get("blobs_copied"))
    for sha256 in blobs:
        if copied:
            path = _blob_path(directory / "blobs", sha256)
            if not path.is_file():
                raise BackupInvalid(f"blob {sha256} is missing from the backup")
            if _sha256(path) != sha256:
                raise BackupInvalid(f"blob {sha256} in the backup is corrupt")
    data = settings.data
    if data.exists() and any(data.iterdir()) and not force:
        raise click.ClickException(f"{data} is not empty (use --force to replace it)")
    database = str(manifest.get("database"))
    postgres = database != "tilsit.db"
    replace = postgres and _check_pg_target(settings.db_url, directory / database, force)
    data.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data.parent))
    try:
        if not postgres:
            shutil.copyfile(directory / database, staging / "tilsit.db")
        for part in ("keys", "trust"):
            _private_copy(directory / part, staging / part)
        if copied:
            for sha256 in blobs:
                target = _blob_path(staging / "blobs", sha256)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(_blob_path(directory / "blobs", sha256), target)
        # The database last of what can fail, in one transaction: a failure before or in
        # it leaves the database and the data directory as they were.
        if postgres:
            _pg_restore(settings.db_url, directory / database, replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Renames only from here: the old directory is set aside, never half-deleted in place.
    aside = data.parent / f"{staging.name}.old"
    if data.exists():
        os.replace(data, aside)
    os.replace(staging, data)
    shutil.rmtree(aside, ignore_errors=True)
    instance = open_instance_for_command(settings, owner=True)
    for sha256, size in blobs.items():
        if not instance.blobs.exists(sha256):
            raise BackupInvalid(f"blob {sha256} is not in the store after restore")
        if not copied and instance.blobs.size(sha256) != size:
            raise BackupInvalid(
                f"blob {sha256} in the store is {instance.blobs.size(sha256)} bytes,"
                f" the backup's manifest says {size}: run `tilsit fsck --verify`"
            )
    serial = instance.renderer.rebuild()
    click.echo(f"restored {len(blobs)} blobs and rebuilt the tree at serial {serial}")
