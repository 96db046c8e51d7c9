"""A render that failed after its commit is tried again without waiting for another write.

Before, a failed project was retried only by a catch-up that had new journal
rows: on a quiet index its pages stayed missing (and ``/_/health`` degraded)
until someone uploaded something else. Now every catch-up retries the reported
failures, and ``tilsit serve`` runs one with each freshness pass.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.freshness import keep_fresh
from tilsit.instance import Instance


def _break(instance: Instance, name: str) -> Path:
    """A file where the project's page directory goes, as a full disk would, fails it."""
    blocker = instance.settings.tree_dir / "main" / "simple" / name
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a directory\n")
    return blocker


def _failed(client: AppClient) -> list[str]:
    health = client.get("/_/health").json()
    projects = [f["project"] for f in health["render_failures"]]
    assert health["status"] == ("degraded" if projects else "ok")
    return projects


def test_a_catch_up_with_no_new_rows_retries_the_failures(
    client: AppClient, token: str, instance: Instance
) -> None:
    blocker = _break(instance, "quiet")
    assert upload(client, make_wheel("quiet", "1.0"), token).status_code == 200
    assert _failed(client) == ["quiet"]
    serial = instance.tree.serial()
    instance.renderer.catch_up()  # the fault is still there: still reported, not lost
    assert _failed(client) == ["quiet"]
    blocker.unlink()
    assert instance.renderer.catch_up() == serial  # no new rows, the serial stays
    assert _failed(client) == []
    assert client.get("/simple/quiet/").status_code == 200


def test_the_server_loop_retries_a_failed_render(
    client: AppClient, token: str, instance: Instance
) -> None:
    blocker = _break(instance, "later")
    assert upload(client, make_wheel("later", "1.0"), token).status_code == 200
    assert _failed(client) == ["later"]
    blocker.unlink()

    async def one_pass() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(keep_fresh(instance, stop, every=60))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if not instance.renderer.render_failures():
                break
        stop.set()
        await task

    asyncio.run(one_pass())
    assert _failed(client) == []
    assert client.get("/simple/later/").status_code == 200
