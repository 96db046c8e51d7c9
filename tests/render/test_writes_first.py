"""Upkeep waits for the writes in flight: an upload never shares the interpreter or the
render lock with a TUF pass or a sweep step that could have waited.

The gate itself, the renderer's upkeep hold, and a whole freshness pass held back by
an upload in flight and let go when it ends (or after its patience)."""

from __future__ import annotations

import dataclasses
import threading
import time

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.freshness import freshness_pass, sweep_pass
from tilsit.instance import Instance
from tilsit.render.writes_first import WritesFirst

SETTLE = 0.5  # s a waiting thread is given to (wrongly) go ahead


def _in_thread(target: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)  # type: ignore[operator]
    thread.start()
    return thread, result


def test_wait_returns_at_once_with_no_write_in_flight() -> None:
    gate = WritesFirst(patience=30)
    started = time.monotonic()
    assert gate.wait() is True
    assert time.monotonic() - started < 1


def test_wait_returns_when_the_last_write_in_flight_ends() -> None:
    gate = WritesFirst(patience=30)
    with gate.writing():
        with gate.writing():  # nested: a journal render inside an upload
            thread, result = _in_thread(gate.wait)
            thread.join(SETTLE)
            assert thread.is_alive()
        thread.join(SETTLE)
        assert thread.is_alive(), "went ahead while the outer write was in flight"
        assert gate.in_flight() == 1
    thread.join(5)
    assert result == [True]
    assert gate.in_flight() == 0


def test_wait_goes_ahead_after_its_patience_under_a_stream_of_writes() -> None:
    gate = WritesFirst(patience=0.2)
    with gate.writing():
        started = time.monotonic()
        assert gate.wait() is False
        assert 0.15 < time.monotonic() - started < 5


def test_a_write_that_fails_is_no_longer_in_flight() -> None:
    gate = WritesFirst(patience=30)
    try:
        with gate.writing():
            raise RuntimeError("store failed")
    except RuntimeError:
        pass
    assert gate.in_flight() == 0
    assert gate.wait() is True


def test_upkeeps_hold_of_the_render_lock_waits_for_an_upload_in_flight(
    instance: Instance,
) -> None:
    renderer = instance.renderer
    renderer.writes.patience = 30

    def hold() -> bool:
        with renderer.locked():
            return True

    with renderer.writes.writing():
        thread, result = _in_thread(hold)
        thread.join(SETTLE)
        assert thread.is_alive() and result == []
    thread.join(10)
    assert result == [True]


def test_a_freshness_pass_waits_while_an_upload_is_in_flight(
    client: AppClient, token: str, instance: Instance
) -> None:
    # An index with TUF metadata and one upload in it: the pass has bins to read.
    assert upload(client, make_wheel("first", "1.0"), token).status_code == 200
    renderer = instance.renderer
    renderer.writes.patience = 30
    tuf = instance.settings.tree_dir / "main" / "tuf"
    before = sorted(p.name for p in tuf.iterdir())
    with renderer.writes.writing():
        thread, result = _in_thread(lambda: freshness_pass(instance))
        thread.join(SETTLE)
        assert thread.is_alive(), "the pass went ahead beside an upload in flight"
        assert sorted(p.name for p in tuf.iterdir()) == before
    thread.join(60)
    assert not thread.is_alive()
    assert result and isinstance(result[0], list)


def test_a_sweep_pass_waits_while_an_upload_is_in_flight(
    client: AppClient, token: str, instance: Instance
) -> None:
    for n in range(3):
        assert upload(client, make_wheel(f"swept-{n}", "1.0"), token).status_code == 200
    renderer = instance.renderer
    renderer.writes.patience = 30
    marks = {"main": 0}  # every snapshot since 0: a sweep is due when keep allows it
    instance.settings = dataclasses.replace(instance.settings, tuf_keep_versions=1)
    with renderer.writes.writing():
        thread, result = _in_thread(lambda: sweep_pass(instance, marks))
        thread.join(SETTLE)
        assert thread.is_alive(), "the sweep went ahead beside an upload in flight"
    thread.join(60)
    assert not thread.is_alive()
    assert result and isinstance(result[0], list)
    assert marks["main"] > 0, "the sweep ran once the upload was done"
