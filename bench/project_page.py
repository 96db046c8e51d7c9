"""A project page of 2,000 versions: what a cold render costs, what a kept one costs, and
how that compares with serving the project's simple page from the tree.

    .venv/bin/python bench/project_page.py [--versions 2000] [--files 3] [--repeat 20]

One run, in process (the app over httpx's ASGI transport, no socket): a mirror index
holds one project of ``--versions`` releases of ``--files`` files each, applied as a
sync applies them (rows written directly, no HTTP), the latest with a Markdown README.
Then, each ``--repeat`` times, taking the median:

- **cold**: the page cache emptied and the renderer's snapshots dropped before the GET,
  so the page reads the history of 2,000 releases (two grouped queries), the shown
  release's files and its metadata blob,
  renders the README and the newest 50 releases of the history;
- **warm**: the same GET again (the kept part reused; only the viewer's part rendered);
- **release**: a release page of a middle version, cold;
- **simple**: ``GET /mir/simple/<project>/`` (HTML) as tilsit serves it from the tree.

Ratios are to the simple page. The load average is printed next to the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.builders import Meta  # noqa: E402

from tilsit.config import load_settings  # noqa: E402
from tilsit.index.manage import create_index  # noqa: E402
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project  # noqa: E402
from tilsit.instance import open_instance  # noqa: E402
from tilsit.render.snapshot import ProjectSnapshots  # noqa: E402
from tilsit.web.app import TilsitApp  # noqa: E402
from tilsit.web.reason import install  # noqa: E402
from tilsit.web.ui import browse_project  # noqa: E402

NAME = "bigproject"
README = "# Big project\n\n" + "Some *Markdown* text with a [link](https://example.org).\n\n" * 40


def _files(instance: object, versions: int, per_version: int) -> list[UpstreamFile]:
    body = Meta(NAME, "x", extra=[("Description-Content-Type", "text/markdown")]).render()
    blob = body + README.encode()
    metadata = hashlib.sha256(blob).hexdigest()
    instance.blobs.put_bytes(blob)  # type: ignore[attr-defined]
    start = datetime(2020, 1, 1, tzinfo=UTC)
    out = []
    for n in range(versions):
        version = f"{n // 100}.{n % 100}"
        tags = ["py3-none-any", "cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-win_amd64"]
        for tag in tags[:per_version]:
            filename = f"{NAME}-{version}-{tag}.whl"
            digest = hashlib.sha256(filename.encode()).hexdigest()
            out.append(
                UpstreamFile(
                    filename=filename,
                    url=f"https://files.upstream.invalid/{filename}",
                    sha256=digest,
                    size=1000 + n,
                    upload_time=start + timedelta(hours=n),
                    metadata_sha256=metadata,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--files", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilsit-bench-") as tmp:
        settings = load_settings(overrides={"data": Path(tmp) / "data"}, environ={})
        instance = open_instance(settings)
        files = _files(instance, args.versions, args.files)
        versions = sorted({f.filename.split("-")[1] for f in files})
        started = time.perf_counter()
        with instance.db.write() as session:
            mirror = create_index(
                session, "mir", "mirror", options={"upstream": "https://upstream.invalid/simple/"}
            )
            apply_upstream_project(
                session,
                mirror,
                UpstreamProject(NAME, 1, files, versions=versions),
                stored=set(instance.blobs),
            )
        instance.renderer.catch_up()
        print(
            f"loaded {len(versions)} versions, {len(files)} files in"
            f" {time.perf_counter() - started:.1f} s"
        )
        install()
        app = TilsitApp(instance)

        async def run() -> dict[str, list[float]]:
            times: dict[str, list[float]] = {"cold": [], "warm": [], "release": [], "simple": []}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def timed(kind: str, path: str, cold: bool) -> None:
                    if cold:
                        browse_project.cache.clear()
                        instance.renderer.snapshots = ProjectSnapshots()
                    began = time.perf_counter()
                    response = await client.get(path)
                    times[kind].append(time.perf_counter() - began)
                    assert response.status_code == 200, (path, response.status_code)

                middle = versions[len(versions) // 2]
                for _ in range(2):  # warm up imports, templates, the tree reader
                    await timed("cold", f"/mir/project/{NAME}/", True)
                    await timed("simple", f"/mir/simple/{NAME}/", False)
                for key in times:
                    times[key].clear()
                for _ in range(args.repeat):
                    await timed("cold", f"/mir/project/{NAME}/", True)
                    await timed("warm", f"/mir/project/{NAME}/", False)
                    await timed("release", f"/mir/project/{NAME}/{middle}/", True)
                    await timed("simple", f"/mir/simple/{NAME}/", False)
            return times

        times = anyio.run(run)
        instance.close()
    simple = statistics.median(times["simple"])
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; median of {args.repeat}")
    print(f"{'request':<34}{'ms':>9}{'x simple':>10}")
    for kind, label in (
        ("cold", f"project page, cold ({len(versions)} versions)"),
        ("warm", "project page, kept"),
        ("release", "release page, cold"),
        ("simple", "simple page (tree)"),
    ):
        value = statistics.median(times[kind])
        print(f"{label:<34}{value * 1000:>9.1f}{value / simple:>10.1f}")


if __name__ == "__main__":
    main()
