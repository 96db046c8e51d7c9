"""``<index>/mirror-status.json``: how fresh a mirror is, published in its tree.

A mirror is never silently stale: anyone reading the tree (through tilsit,
nginx, a CDN or an rsync copy) can compare ``synced_serial`` with the
upstream's serial and see when the last sync succeeded and what last failed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tilsit.db.engine import Database
from tilsit.db.models import IndexRow, UpstreamStateRow
from tilsit.spec.simple import format_time
from tilsit.store.tree import Tree

__all__ = ["STATUS_FILE", "refresh_statuses", "status_document", "status_path", "write_status"]

STATUS_FILE = "mirror-status.json"


def status_path(index_name: str) -> str:
    return f"{index_name}/{STATUS_FILE}"


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def status_document(index: IndexRow, state: UpstreamStateRow | None) -> dict[str, Any]:
    return {
        "index": index.name,
        "kind": index.kind,
        "upstream": index.options.get("upstream"),
        "upstream_serial": state.upstream_serial if state else None,
        "synced_serial": state.synced_serial if state else None,
        "last_success": _time(state.last_success) if state else None,
        "last_error": state.last_error if state else None,
        "last_error_at": _time(state.last_error_at) if state else None,
        # Whose TUF signatures the index carries: the origin's, or this server's and why.
        "tuf": index.options.get("tuf"),
    }


def write_status(tree: Tree, index: IndexRow, state: UpstreamStateRow | None) -> dict[str, Any]:
    """Write the document atomically into the tree; return it."""
    doc = status_document(index, state)
    tree.write(status_path(index.name), _encoded(doc))
    return doc


def _encoded(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def refresh_statuses(db: Database, tree: Tree) -> int:
    """Rewrite each mirror's status whose database state this tree does not show yet.

    The host that syncs writes its own tree's document; a host sharing the database
    (tilsit.hosts) calls this as it follows the others. Returns how many it wrote.
    """
    written = 0
    with db.read() as session:
        rows = session.execute(
            select(IndexRow, UpstreamStateRow)
            .join(UpstreamStateRow, UpstreamStateRow.index_id == IndexRow.id)
            .where(IndexRow.kind == "mirror")
        ).all()
        for index, state in rows:
            data = _encoded(status_document(index, state))
            if tree.read(status_path(index.name)) != data:
                tree.write(status_path(index.name), data)
                written += 1
    return written
