"""Deleted indexes are invisible: one rule on every ORM query, not a check in each caller.

``tilsit index delete`` sets ``indexes.deleted_at`` and keeps the rows (journal,
audit, files: blobs are fsck's business). From then on every SELECT that names
:class:`~tilsit.db.models.IndexRow`, as its entity, in a join or a subquery, or by
``Session.get``, sees only indexes whose ``deleted_at`` is NULL, so a lookup by
name (the CLI, the web routes, uploads, the scheduler, the proxy) answers "no such
index" without knowing deletion exists.

Exceptions ask for it by name with the execution option :data:`WITH_DELETED`:
the renderer (which removes a deleted index's tree) and index creation (a
deleted index's name stays taken while its rows exist). Relationship loads
(``project.index``) are left alone, so a row already reached keeps its index.
"""

from __future__ import annotations

from sqlalchemy.orm import ORMExecuteState, with_loader_criteria

from tilsit.db.models import IndexRow

__all__ = ["WITH_DELETED", "hide_deleted_indexes", "with_deleted"]

WITH_DELETED = "tilsit_with_deleted_indexes"


def with_deleted() -> dict[str, bool]:
    """Execution options that let a query see deleted indexes too."""
    return {WITH_DELETED: True}


def hide_deleted_indexes(state: ORMExecuteState) -> None:
    """The ``do_orm_execute`` hook of every tilsit session (see :class:`Database`)."""
    if (
        not state.is_select
        or state.is_relationship_load
        or state.is_column_load
        or state.execution_options.get(WITH_DELETED, False)
    ):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            IndexRow,
            IndexRow.deleted_at.is_(None),
            include_aliases=True,
            propagate_to_loaders=False,
        )
    )
