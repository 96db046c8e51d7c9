"""One tilsit instance: settings plus the database, blob store, tree and renderer they name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import IndexRow
from tilsit.index.manage import create_index
from tilsit.render.follow import Renderer
from tilsit.render.tree import Tree
from tilsit.store.fs import FilesystemBlobStore
from tilsit.trust.keys import open_keys
from tilsit.trust.repository import Signing
from tilsit.trust.settings import trust_settings, utcnow

__all__ = ["Instance", "open_instance"]


@dataclass
class Instance:
    settings: Settings
    db: Database
    blobs: FilesystemBlobStore
    tree: Tree
    renderer: Renderer
    signing: Signing

    def close(self) -> None:
        self.db.dispose()


def open_instance(settings: Settings, *, migrate: bool = True) -> Instance:
    """Open (and on first use create) the data directory, schema and default index."""
    settings.data.mkdir(parents=True, exist_ok=True)
    tree = Tree(settings.tree_dir, settings.tmp_dir)
    # Every index is signed (TUF); a data directory without keys gets a first set.
    # Before the database opens: an unsafe key file stops the server with nothing open.
    trust = trust_settings(settings)
    signing = Signing(tree, open_keys(settings.data, trust, utcnow()), trust)
    db = Database(settings.db_url)
    if migrate:
        db.migrate()
    blobs = FilesystemBlobStore(settings.blob_dir, settings.tmp_dir)
    renderer = Renderer(db, blobs, tree, settings.data / "render.lock", settings.base_url, signing)
    instance = Instance(settings, db, blobs, tree, renderer, signing)
    with db.write() as session:
        exists = session.scalars(
            select(IndexRow.id).where(IndexRow.name == settings.default_index)
        ).first()
        if exists is None:
            create_index(session, settings.default_index, "hosted", actor="tilsit")
    renderer.catch_up()
    return instance
