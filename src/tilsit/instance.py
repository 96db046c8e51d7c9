"""One tilsit instance: settings plus the database, blob store, tree and renderer they name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tilsit.config import Settings
from tilsit.db.engine import Database, DatabaseUnavailable
from tilsit.db.models import IndexRow
from tilsit.index.manage import create_index
from tilsit.operator import ConfigError, DataDirMissing, check_owner
from tilsit.render.base_url import choose_base_url, record_base_url, recorded_base_url
from tilsit.render.follow import Renderer
from tilsit.render.purge import PurgeFollower, PurgeTarget
from tilsit.search.follow import SearchFollower
from tilsit.store.blobs import BlobStore
from tilsit.store.counted import counted
from tilsit.store.fs import FilesystemBlobStore
from tilsit.store.private import SQLITE_SIDE_FILES
from tilsit.store.s3 import S3BlobStore, S3Config, make_client
from tilsit.store.tree import Tree
from tilsit.trust.keyring import open_keys
from tilsit.trust.keys import keys_dir, trust_dir
from tilsit.trust.repository import Signing
from tilsit.trust.settings import trust_settings, utcnow
from tilsit.trust.shared import SharedMetadata

__all__ = [
    "Instance",
    "open_instance",
    "require_data_dir",
    "require_instance",
    "written_paths",
]


@dataclass
class Instance:
    settings: Settings
    db: Database
    blobs: BlobStore
    tree: Tree
    renderer: Renderer
    signing: Signing
    search: SearchFollower

    def close(self) -> None:
        self.db.dispose()


log = logging.getLogger("tilsit.render")

_FIX = (
    "give the data directory with --data or TILSIT_DATA (or data in the settings file),"
    " or make a new one with `tilsit init`"
)


# The longest a SigV4 presigned URL may be valid: seven days.
_PRESIGN_MAX = 7 * 24 * 3600


def s3_blob_store(settings: Settings) -> S3BlobStore:
    """The S3 blob store the settings name (docs/storage.md)."""
    if not settings.s3_bucket:
        raise ConfigError('blob_store = "s3" needs s3_bucket: the bucket that holds the blobs')
    config = S3Config(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
    return S3BlobStore(make_client(config), config.bucket, config.prefix, tmp=settings.tmp_dir)


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings choose: the filesystem under the data directory, or
    an S3 bucket (the tree then holds pointers that tilsit serves: store/blobfile.py)."""
    if settings.blob_store == "s3":
        if not 1 <= settings.s3_url_expiry <= _PRESIGN_MAX:
            raise ConfigError(
                f"s3_url_expiry must be 1 to {_PRESIGN_MAX} seconds (SigV4's limit), got"
                f" {settings.s3_url_expiry}"
            )
        return counted(s3_blob_store(settings), "s3")
    # Failures counted for /_/metrics (store/counted.py), on either store.
    return counted(FilesystemBlobStore(settings.blob_dir, settings.tmp_dir), "fs")


def require_data_dir(settings: Settings) -> None:
    """Refuse unless the data directory exists and belongs to the user running tilsit."""
    if not settings.data.is_dir():
        raise DataDirMissing(f"no tilsit data directory at {settings.data.resolve()}; {_FIX}")
    check_owner(settings.data)


def require_instance(settings: Settings) -> None:
    """Refuse, naming where it looked, unless a data directory (and database) is there.

    Only ``tilsit serve`` and ``tilsit init`` make a new instance: any other command
    run from the wrong directory, or with a mistyped ``--data``, would otherwise make
    an empty one and answer from it ("no such user") as if the real one were empty.
    """
    require_data_dir(settings)
    database = Database.sqlite_path(settings.db_url)
    if database is not None and not database.is_file():
        raise DataDirMissing(f"no tilsit database at {database.resolve()}; {_FIX}")
    # A server database at the wrong URL (another, empty database) is the same mistake.
    db = Database(settings.db_url)
    try:
        empty = db.check_connection() is None
    finally:
        db.dispose()
    if empty:
        raise DataDirMissing(
            f"the database {db.display_url} holds no tilsit schema; check database_url"
            " (TILSIT_DATABASE_URL), or make a new instance with `tilsit init`"
        )


def written_paths(settings: Settings) -> list[Path]:
    """The directories (and lock and state files) a running server writes, outermost first.

    ``serve`` checks each that exists before it starts: a page directory or lock
    that another user made (a CLI run as root) would otherwise fail uploads
    after their commit. The tree is checked to the depth tilsit makes per index
    (``<index>/simple``, ``pypi``, ``packages``, ``tuf``), not file by file, so
    start-up stays quick on a large index.
    """
    data, tree = settings.data, settings.tree_dir
    paths = [
        data,
        tree,
        settings.tmp_dir,
        settings.blob_dir,
        keys_dir(data),
        trust_dir(data),
        settings.outbox_dir,
        data / "render.lock",
        data / "trust.lock",
        data / "render-failures.json",
        data / "render-base-url.json",
        tree / ".serial",
        *sorted(data.glob("mirror-*.lock")),
    ]
    database = Database.sqlite_path(settings.db_url)
    if database is not None:
        # SQLite writes its -wal and -shm files beside the database.
        paths += [database.parent, database]
        paths += [database.with_name(database.name + s) for s in SQLITE_SIDE_FILES]
    if tree.is_dir():
        for index in sorted(p for p in tree.iterdir() if p.is_dir() and p.name != "packages"):
            paths.append(index)
            paths += [index / part for part in ("simple", "pypi", "packages", "tuf")]
        paths.append(tree / "packages")
    return paths


def open_instance(
    settings: Settings,
    *,
    migrate: bool = True,
    create: bool = True,
    owner: bool | None = None,
    rerender: bool = True,
) -> Instance:
    """Open the data directory, schema and default index; with ``create``, make them first.

    Without ``create`` (every command but ``serve`` and ``init``), a missing data
    directory or database, or an empty one, is refused (:class:`DataDirMissing`)
    and nothing is made.

    ``owner`` (by default ``create``: serve and init) renders with this process's
    ``base_url`` and makes it the tree's, rendering the whole tree again when it
    was rendered with another one (unless ``rerender`` is off: ``tilsit rebuild``
    renders it all anyway). Other processes render with the tree's recorded base
    URL, so a command run without the server's settings cannot change one
    project's URLs (:mod:`tilsit.render.base_url`).
    """
    if create:
        settings.data.mkdir(parents=True, exist_ok=True)
    else:
        require_instance(settings)
    tree = Tree(settings.tree_dir, settings.tmp_dir)
    # Every index is signed (TUF); a data directory without keys gets a first set.
    # Before the database opens: an unsafe key file stops the server with nothing open.
    trust = trust_settings(settings)
    signing = Signing(tree, open_keys(settings.data, trust, utcnow()), trust)
    db = Database(settings.db_url)
    try:
        db.check_connection()
    except DatabaseUnavailable:
        db.dispose()
        raise
    if migrate:
        db.migrate()
    if db.dialect == "postgresql" and settings.tuf_shared:
        # Hosts sharing the database sign one at a time and serve the same bytes.
        signing.shared = SharedMetadata(db)
    blobs = open_blob_store(settings)
    choice = choose_base_url(
        settings.base_url,
        recorded_base_url(settings.data),
        owner=create if owner is None else owner,
    )
    if choice.warning:
        log.warning("%s", choice.warning)
    renderer = Renderer(db, blobs, tree, settings.data / "render.lock", choice.use, signing)
    search = SearchFollower(db, tree, renderer.read_blob, lambda: renderer.snapshots)
    renderer.followers.append(search.catch_up)
    if settings.purge_url:  # CDN purge after each render, on its own thread (docs/cdn.md)
        target = PurgeTarget(
            settings.purge_url,
            settings.purge_method,
            settings.purge_style,
            settings.purge_token,
            settings.purge_timeout,
            settings.default_index,
        )
        renderer.followers.append(PurgeFollower(db, tree, settings.data / "purge.serial", target))
    instance = Instance(settings, db, blobs, tree, renderer, signing, search)
    with db.write() as session:
        exists = session.scalars(
            select(IndexRow.id).where(IndexRow.name == settings.default_index)
        ).first()
        if exists is None:
            create_index(session, settings.default_index, "hosted", actor="tilsit")
    renderer.catch_up()
    if choice.rerender and rerender:
        log.warning(
            "base_url is now %r (the tree has %r): rendering every page again",
            choice.use,
            recorded_base_url(settings.data),
        )
        renderer.rebuild()
    if choice.record and (rerender or not choice.rerender):
        record_base_url(settings.data, choice.use)
    return instance
