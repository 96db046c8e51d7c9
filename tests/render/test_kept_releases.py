"""Two renderers that keep releases between renders, as two worker processes do, stay exact.

Each ``tilsit serve`` worker has its own renderer and its own kept releases and page
parts (:class:`tilsit.render.snapshot.ProjectSnapshots`, :mod:`tilsit.render.parts`).
One worker's kept copy of a release must be re-read when another worker changed it,
which it learns only from the database (the release's ``last_serial``). Here uploads
into one project go through the app (its renderer) from two threads at once, while a
second renderer over the same database and tree yanks and unyanks releases and
renders; at the end the tree must be what a rebuild from the database makes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.render.test_scoped_render import _targets, _tree
from tests.uploads import upload
from tilsit.index.manage import get_index, set_yanked
from tilsit.instance import Instance
from tilsit.render.follow import Renderer
from tilsit.render.parts import PageParts
from tilsit.render.snapshot import ProjectSnapshots

PROJECT = "shared"


def _beside(renderer: Renderer) -> Renderer:
    """Another renderer over the same data directory, as another worker process has."""
    return Renderer(
        renderer.db,
        renderer.blobs,
        renderer.tree,
        renderer.lock_path,
        renderer.base_url,
        renderer.signing,
        renderer.failures.path,
    )


def _keeping(renderer: Renderer) -> None:
    renderer.snapshots = ProjectSnapshots(keep_from=1)
    renderer.parts = PageParts(keep_from=1)


def test_two_renderers_keeping_releases_leave_the_tree_a_rebuild_makes(
    client: AppClient, token: str, instance: Instance
) -> None:
    first = instance.renderer
    _keeping(first)
    # The other worker: its own renderer (and kept copies) over the same data directory.
    other = _beside(first)
    _keeping(other)
    for n in range(4):
        assert upload(client, make_wheel(PROJECT, f"0.{n}"), token).status_code == 200
    other.catch_up()  # the other worker keeps the project as it is now

    stop = threading.Event()

    def yank_and_render() -> int:
        rounds = 0
        while not stop.is_set() or rounds < 3:
            with instance.db.write() as session:
                index = get_index(session, "main")
                set_yanked(session, index, PROJECT, f"0.{rounds % 4}", yanked=rounds % 2 == 0)
            other.catch_up()
            rounds += 1
        return rounds

    def uploads(start: int) -> list[int]:
        return [
            upload(client, make_wheel(PROJECT, f"{start}.{n}"), token).status_code for n in range(6)
        ]

    with ThreadPoolExecutor(3) as pool:
        yanking = pool.submit(yank_and_render)
        statuses = [pool.submit(uploads, start) for start in (1, 2)]
        assert all(code == 200 for future in statuses for code in future.result())
        stop.set()
        assert yanking.result() >= 3
    first.catch_up()
    other.catch_up()
    # Both renderers kept the project.
    assert len(first.snapshots) == len(other.snapshots) == 1
    scoped_tree, scoped_targets = _tree(instance), _targets(instance)
    assert any(path.endswith(f"pypi/{PROJECT}/2.5/json") for path in scoped_tree)

    fresh = _beside(first)
    fresh.rebuild()
    assert _tree(instance) == scoped_tree
    assert _targets(instance) == scoped_targets
