"""A mirror's TUF metadata after a sync: carry the origin's signatures, or sign here and say why.

A tilsit origin signs its pages; a mirror that copies them unchanged carries
that metadata (:func:`tilsit.trust.mirror.carry`), so a client can verify the
mirror against the origin's root. A mirror that cannot (its filters change the
pages, the origin publishes no metadata, or its pages link files by absolute
URL) signs with this server's own root, and says why in its options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from tilsit.db.models import FileRow, IndexRow
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

__all__ = ["NO_METADATA", "publish_trust"]

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
