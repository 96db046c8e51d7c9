"""A mirror's TUF metadata after a sync: carry the origin's signatures, or sign here and say why.

A tilsit origin signs its pages; a mirror that copies them unchanged carries
that metadata (:func:`tilsit.trust.mirror.carry`), so a client can verify the
mirror against the origin's root. A mirror that cannot (its filters change the
pages, the origin publishes no metadata, or its pages link files by absolute
URL) signs with this server's own root, and says why in its options.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from tilsit.db.models import FileRow, IndexRow, UpstreamStateRow
from tilsit.index.upstream import reusable_blobs
from tilsit.instance import Instance
from tilsit.trust.layout import tuf_dir
from tilsit.trust.mirror import (
    RESIGNED,
    AbsoluteLinks,
    CarryFault,
    NoOriginMetadata,
    carries,
    carry,
    mark_resigned,
    reset_state,
    resigned,
    state_dir_for,
)

__all__ = ["NO_METADATA", "carry_here", "publish_trust"]

log = logging.getLogger(__name__)

# Per host, beside the mirror's TUF state: the sync (its last success) this host's tree
# carries the origin's metadata of.
_CARRIED_AT = "carried-at"

NO_METADATA = "the upstream publishes no TUF metadata"


def publish_trust(
    instance: Instance,
    index_id: int,
    index_name: str,
    *,
    filtered: bool,
    changed: bool,
    note: Callable[[str], None],
) -> str | None:
    """Carry the origin's TUF metadata for mirror ``index_name``, or sign it here and say why.

    Run after a complete sync. ``filtered``: the mirror's filters are active (its
    pages differ from the origin's). ``changed``: the run changed a project. What
    is done is told through ``note``; the return value is an error for the run
    (the origin's metadata does not verify), else None.
    """
    with instance.db.read() as session:
        index = session.get_one(IndexRow, index_id)
        private = index.private
        options = dict(index.options)
    upstream = str(options["upstream"])
    before = options.get("tuf")
    if (
        not changed
        and isinstance(before, dict)
        and before.get("mode") == RESIGNED
        and str(before.get("reason", "")).startswith(NO_METADATA)
    ):
        return None  # asked when the upstream last changed: no metadata then, none to copy now
    if filtered:
        reason = "filtered: its pages differ from the origin's signed pages"
    else:
        try:
            with instance.renderer.locked():
                carried = carry(
                    instance.tree,
                    instance.blobs,
                    state_dir_for(instance.settings.data, index_name),
                    index_name,
                    private,
                    options,
                    reusable=_held_by_index(instance, index_id),
                )
                _set_tuf(instance, index_id, carried.options, carried.root)
            note(
                f"TUF: carrying the origin's metadata (timestamp v{carried.timestamp_version},"
                f" {carried.targets} targets, {carried.fetched_pages} pages fetched)"
            )
            return None
        except NoOriginMetadata as exc:
            reason = f"{NO_METADATA} ({exc})"
        except AbsoluteLinks as exc:
            reason = (
                f"the upstream's pages link files by absolute URL ({exc}),"
                " so its signed pages would send clients to the origin"
            )
        except CarryFault as exc:
            return f"the upstream's TUF metadata does not verify: {exc}"
    note(f"TUF: re-signed with this server's own root: {reason}")
    was_carried = carries(options)
    tuf = resigned(upstream, reason)
    _set_tuf(instance, index_id, tuf, None)
    if was_carried:
        # The origin's metadata is another root's: sign everything here from scratch.
        instance.tree.remove_dir(tuf_dir(index_name))
        reset_state(instance.settings.data, index_name)
        instance.renderer.rebuild()
    with instance.renderer.locked():
        unsigned = mark_resigned(
            instance.tree,
            instance.signing.keys,
            index_name,
            {"upstream": upstream, "reason": reason},
        )
    if unsigned is not None:
        _set_tuf(instance, index_id, {**tuf, "root_field": f"not signed: {unsigned}"}, None)
    return None


def _held_by_index(instance: Instance, index_id: int) -> Callable[[str], bool]:
    """Whether a signed target's stored blob may stand for it (one query per miss)."""
    own: set[str] = set()
    with instance.db.read() as session:
        for sha256, metadata_sha256, metadata_cached in session.execute(
            select(FileRow.sha256, FileRow.metadata_sha256, FileRow.metadata_cached).where(
                FileRow.index_id == index_id, FileRow.cached.is_(True)
            )
        ):
            own.add(sha256)
            if metadata_sha256 is not None and metadata_cached:
                own.add(metadata_sha256)

    def reusable(sha256: str) -> bool:
        if sha256 in own:
            return True
        with instance.db.read() as session:
            return bool(reusable_blobs(session, index_id, {sha256}))

    return reusable


def _set_tuf(instance: Instance, index_id: int, tuf: dict[str, Any], root: bytes | None) -> None:
    with instance.db.write() as session:
        index = session.get_one(IndexRow, index_id)
        options = dict(index.options)
        options["tuf"] = tuf
        if root is not None and "upstream_root" not in options:
            options["upstream_root"] = root.decode()  # trusted on first use: pinned from now
        if options != index.options:
            index.options = options


def carry_here(instance: Instance) -> int:
    """Carry the origin's metadata into this host's tree for each carried mirror that
    another host synced since this one last carried it; how many were carried.

    A carried mirror's pages are the origin's signed bytes, which only a carry writes
    (the renderer leaves them alone), and its sync runs on one host of the cluster. Each
    other host carries for itself after that sync: verified against the same pinned
    root, with the blobs the sync stored, so every host serves the same signed
    metadata. Called as a host follows the others (tilsit.hosts); a failure is logged
    and tried again at the next call.
    """
    done = 0
    with instance.db.read() as session:
        rows = session.execute(
            select(IndexRow.id, IndexRow.name, IndexRow.private, IndexRow.options, UpstreamStateRow)
            .join(UpstreamStateRow, UpstreamStateRow.index_id == IndexRow.id)
            .where(IndexRow.kind == "mirror")
        ).all()
    for index_id, name, private, options, state in rows:
        if not carries(options or {}) or state.last_success is None:
            continue
        # The host that ran the sync carries once more here: one look at the origin's
        # timestamp, its pages already in the tree.
        stamp = state.last_success.isoformat()
        marker = state_dir_for(instance.settings.data, name) / _CARRIED_AT
        if marker.is_file() and marker.read_text() == stamp:
            continue
        try:
            with instance.renderer.locked():
                carry(
                    instance.tree,
                    instance.blobs,
                    state_dir_for(instance.settings.data, name),
                    name,
                    private,
                    dict(options),
                    reusable=_held_by_index(instance, index_id),
                )
        except (NoOriginMetadata, AbsoluteLinks, CarryFault) as exc:
            log.warning("%s: carrying the origin's TUF metadata on this host failed: %s", name, exc)
            continue
        _mark_carried(instance, name, stamp)
        done += 1
    return done


def _mark_carried(instance: Instance, index: str, stamp: str) -> None:
    marker = state_dir_for(instance.settings.data, index) / _CARRIED_AT
    marker.parent.mkdir(parents=True, exist_ok=True)
    staged = marker.with_name(f".{_CARRIED_AT}.{os.getpid()}")
    staged.write_text(stamp)
    os.replace(staged, marker)
