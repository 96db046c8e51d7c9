"""A mirror moved to another upstream with `index set --upstream` syncs from it in full."""

from __future__ import annotations

from pathlib import Path

from tests.builders import make_wheel
from tests.conftest import run_cli, stop
from tests.upstream.conftest import downstream, start_upstream, state_of, sync, tree_projects


def test_new_upstream_is_compared_in_full(postgres_base: str | None, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = start_upstream(tmp_path / "a", postgres_base)
    new = start_upstream(tmp_path / "b", postgres_base)
    try:
        # The old upstream's serial runs well ahead of the new one's.
        old.upload(
            *(make_wheel("moved", f"1.{n}") for n in range(4)), make_wheel("old-only", "1.0")
        )
        new.upload(make_wheel("moved", "1.0"), make_wheel("new-only", "1.0"))
        settings, instance = downstream(tmp_path / "down", postgres_base)
        try:
            run_cli(settings, "index", "create", "mirror", "--mirror", old.simple_url)
            assert sync(instance).ok
            assert set(tree_projects(instance, "mirror")) == {"moved", "old-only"}
            before = state_of(instance).synced_serial
            assert before is not None

            run_cli(settings, "index", "set", "mirror", "--upstream", new.simple_url)
            # Without the reset the new root (a lower serial) would be refused as stale,
            # and "moved" (listed with a serial it had before) skipped as unchanged.
            report = sync(instance)
            assert report.ok, report.summary()
            assert set(tree_projects(instance, "mirror")) == {"moved", "new-only"}
            assert state_of(instance).synced_serial != before
            page = instance.tree.read("mirror/simple/moved/index.v1.json")
            assert page is not None
            assert b"moved-1.3" not in page and b"moved-1.0-py3-none-any.whl" in page
        finally:
            instance.close()
    finally:
        stop(old.live)
        stop(new.live)
