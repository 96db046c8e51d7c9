"""A render's batch of TUF changes takes back one project's part in what that part
changed: marks, undo to a mark, undo of a part taken earlier, and settling a group."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tilsit.trust.repository import Batch

PATHS = [f"simple/p{n}/index.html" for n in range(6)]
SHA = "ab" * 32


def _snapshot(batch: Batch) -> dict[str, object]:
    return {p: (None if t is None else t.hashes["sha256"]) for p, t in batch.changes.items()}


edits = st.lists(
    st.tuples(st.sampled_from(PATHS), st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))),
    max_size=12,
)


def _apply(batch: Batch, steps: list[tuple[str, str | None]]) -> None:
    for path, value in steps:
        if value is None:
            batch.remove(path)
        else:
            batch.upsert(path, value * 64, 10)


@given(edits, edits)
def test_undo_to_a_mark_restores_the_batch_as_it_was(
    before: list[tuple[str, str | None]], after: list[tuple[str, str | None]]
) -> None:
    batch = Batch()
    _apply(batch, before)
    was = _snapshot(batch)
    mark = batch.mark()
    _apply(batch, after)
    batch.undo_to(mark)
    assert _snapshot(batch) == was


@given(edits, edits, edits)
def test_a_part_taken_back_later_leaves_the_others_changes(
    first: list[tuple[str, str | None]],
    part: list[tuple[str, str | None]],
    later: list[tuple[str, str | None]],
) -> None:
    # A project's files, then other projects' changes on other paths, then the
    # project's pages fail: its files' targets are taken back, the others stay.
    batch = Batch()
    _apply(batch, first)
    mark = batch.mark()
    own = [(p, v) for p, v in part if p in PATHS[:3]]
    others = [(p, v) for p, v in later if p in PATHS[3:]]
    _apply(batch, own)
    taken = batch.since(mark)
    _apply(batch, others)
    expected = _snapshot(batch)
    for path in {p for p, _ in own}:
        reference = Batch()
        _apply(reference, first)
        if path in reference.changes:
            expected[path] = _snapshot(reference)[path]
        else:
            expected.pop(path, None)
    batch.undo(taken)
    assert _snapshot(batch) == expected


def test_settling_keeps_the_changes_and_forgets_the_log() -> None:
    batch = Batch()
    batch.upsert(PATHS[0], SHA, 1)
    batch.remove(PATHS[1])
    batch.settle()
    assert batch.mark() == 0
    batch.undo_to(0)
    assert set(batch.changes) == {PATHS[0], PATHS[1]}
    assert batch.changes[PATHS[1]] is None


def test_an_unsignable_path_is_neither_recorded_nor_logged() -> None:
    batch = Batch()
    assert batch.upsert("../escape", SHA, 1) is False
    assert batch.changes == {}
    assert batch.mark() == 0
