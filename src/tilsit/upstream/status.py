"""``<index>/mirror-status.json``: how fresh a mirror is, published in its tree.

A mirror is never silently stale: anyone reading the tree (through tilsit,
nginx, a CDN or an rsync copy) can compare ``synced_serial`` with the
upstream's serial and see when the last sync succeeded and what last failed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tilsit.db.models import IndexRow, UpstreamStateRow
from tilsit.spec.simple import format_time
from tilsit.store.tree import Tree

__all__ = ["STATUS_FILE", "status_document", "status_path", "write_status"]

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
    tree.write(status_path(index.name), (json.dumps(doc, indent=2) + "\n").encode())
    return doc
