"""A virtual index to hang policies on: made as a row, since its creation command is
built alongside (issue 13); policies only ask that ``kind == "virtual"``."""

from __future__ import annotations

import pytest

from tilsit.db.models import IndexRow, ProjectRow
from tilsit.instance import Instance
from tilsit.spec.names import confusable_key, normalize

VIRTUAL = "one"


@pytest.fixture
def virtual(instance: Instance) -> str:
    with instance.db.write() as session:
        session.add(IndexRow(name=VIRTUAL, kind="virtual"))
    return VIRTUAL


def add_project(instance: Instance, index_name: str, name: str) -> None:
    """The virtual index's own row for ``name``, as its member fan-out makes one."""
    with instance.db.write() as session:
        index = session.query(IndexRow).filter_by(name=index_name).one()
        session.add(
            ProjectRow(
                index_id=index.id,
                name=name,
                normalized=normalize(name),
                confusable=confusable_key(name),
            )
        )
