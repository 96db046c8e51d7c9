"""A mirror of a pypiserver-, devpi- or plain-tree-shaped upstream keeps every fact clients use.

Such upstreams list files with a sha256 at most. The mirror reads each fetched
wheel's METADATA (the upload path's reader, under its caps) and serves it as
``.metadata`` (PEP 658/714), derives ``requires-python`` from it, fills the
legacy JSON ``info`` and the md5/blake2 digests, and shows an upload time only
where the upstream gave one: a sync time would make every file look new to a
client cool-down. The last test installs with ``uv --exclude-newer`` through a
mirror of an upstream that gives times, and gets the older version.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.builders import Meta, make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import start_server, stop
from tests.upstream.conftest import (
    HTML,
    Notes,
    check_consistent,
    make_mirror,
    sync,
    tree_page,
)
from tests.upstream.fidelity import (
    ShapedIndex,
    check_html_page,
    check_json_page,
    check_legacy_json,
    check_unreadable,
    loads,
    shaped_fixture,  # noqa: F401 - the fixture, by its name "shaped"
    wheel_metadata,
)
from tests.upstream.shapes import Listed, ShapedUpstream
from tilsit.config import Settings
from tilsit.db.models import FileRow
from tilsit.instance import Instance
from tilsit.store.tree import file_path


def test_a_mirror_keeps_metadata_digests_and_only_the_upstreams_upload_times(
    shaped: ShapedIndex, mirror_instance: tuple[Settings, Instance]
) -> None:
    instance = mirror_instance[1]
    make_mirror(instance, shaped.simple_url)
    notes = Notes()
    report = sync(instance, reporter=notes)
    assert report.ok, (report.failed, report.error)
    assert check_consistent(instance) == 4  # every promised .metadata is in the tree

    wheels = {d.filename for d in shaped.dists["fid-pkg"] if d.filename.endswith(".whl")}
    page = loads(tree_page(instance, "mirror", "fid-pkg"))
    check_json_page(shaped, page, fetched=wheels)
    html = tree_page(instance, "mirror", "fid-pkg", HTML)
    assert html is not None
    check_html_page(shaped, html)
    assert 'data-requires-python="&gt;=3.8"' in html.decode()
    for filename in wheels:
        served = instance.tree.read(file_path(shaped.dist(filename).sha256, filename) + ".metadata")
        assert served == wheel_metadata(shaped.dist(filename))
    check_legacy_json(
        shaped,
        loads(instance.tree.read("mirror/pypi/fid-pkg/json")),
        fetched=wheels | {"fid_pkg-1.0.tar.gz"},
    )

    # Hostile input from the upstream: METADATA past the reader's cap. Mirrored, noted.
    check_unreadable(loads(tree_page(instance, "mirror", "fid-bad")))
    assert any(
        "fid_bad-1.0-py3-none-any.whl: METADATA not readable" in line
        and "served without .metadata" in line
        for line in notes.lines
    ), notes.lines


def test_a_later_sync_keeps_what_the_bytes_said(
    tmp_path: Path, mirror_instance: tuple[Settings, Instance]
) -> None:
    """A page re-read without metadata (the file not fetched again) keeps the extracted facts."""
    upstream = ShapedUpstream("pypiserver")
    try:
        first = make_wheel("fid-keep", "1.0", requires_python=">=3.9")
        upstream.add("fid-keep", Listed(first))
        instance = mirror_instance[1]
        make_mirror(instance, upstream.simple_url)
        assert sync(instance).ok
        upstream.add("fid-keep", Listed(make_wheel("fid-keep", "1.1")))
        assert sync(instance).ok  # no serials: every page is read again
    finally:
        upstream.stop()
    files = {f["filename"]: f for f in loads(tree_page(instance, "mirror", "fid-keep"))["files"]}
    kept = files[first.filename]
    assert kept["core-metadata"] == {"sha256": hashlib.sha256(wheel_metadata(first)).hexdigest()}
    assert kept["requires-python"] == ">=3.9"
    with instance.db.read() as session:
        row = session.query(FileRow).filter_by(filename=first.filename).one()
        assert row.md5 == hashlib.md5(first.data, usedforsecurity=False).hexdigest()
        assert row.upload_time is None


@pytest.mark.clients
@pytest.mark.parametrize("shape", ["devpi", "pypiserver"])
def test_uv_exclude_newer_through_a_mirror(
    shape: str, tmp_path: Path, mirror_instance: tuple[Settings, Instance]
) -> None:
    """devpi gives upload times: uv picks the version old enough. pypiserver gives none: uv
    is told the date is missing (a sync time would have looked like a real, recent one)."""
    upstream = ShapedUpstream(shape)
    upstream.add(
        "fid-cool",
        Listed(make_wheel("fid-cool", "1.0"), upload_time=datetime(2024, 1, 1, tzinfo=UTC)),
        Listed(make_wheel("fid-cool", "2.0"), upload_time=datetime(2025, 6, 1, tzinfo=UTC)),
    )
    settings, instance = mirror_instance
    make_mirror(instance, upstream.simple_url)
    try:
        assert sync(instance).ok
    finally:
        upstream.stop()
    live = start_server(settings, tmp_path / "mirror.log")
    try:
        target = tmp_path / "target"
        result = Sandbox(tmp_path / "uv").run(
            "uv",
            "pip",
            "install",
            "--no-cache",
            "--python",
            Path(sys.executable),
            "--target",
            target,
            "--index-url",
            f"{live.url}/mirror/simple/",
            "--exclude-newer",
            "2025-01-01T00:00:00Z",
            "fid-cool",
        )
    finally:
        stop(live)
    if shape == "devpi":
        assert result.returncode == 0, describe(result)
        assert (target / "fid_cool-1.0.dist-info").is_dir(), describe(result)
        assert not (target / "fid_cool-2.0.dist-info").exists()
    else:
        assert result.returncode != 0, describe(result)
        for version in ("1.0", "2.0"):
            missing = f"fid_cool-{version}-py3-none-any.whl` is missing an upload date"
            assert missing in result.stderr, describe(result)


def test_metadata_naming_another_project_or_a_bad_requires_python(
    mirror_instance: tuple[Settings, Instance],
) -> None:
    """METADATA for another project is not served; a bad Requires-Python is not listed."""
    upstream = ShapedUpstream("pypiserver")
    liar = make_wheel("fid-liar", "1.0", metadata=Meta("other-project", "1.0").render())
    upstream.add("fid-liar", Listed(liar))
    odd = make_wheel("fid-odd", "1.0", requires_python="three or newer")
    upstream.add("fid-odd", Listed(odd))
    instance = mirror_instance[1]
    make_mirror(instance, upstream.simple_url)
    notes = Notes()
    try:
        assert sync(instance, reporter=notes).ok
    finally:
        upstream.stop()
    (entry,) = loads(tree_page(instance, "mirror", "fid-liar"))["files"]
    assert entry["core-metadata"] is False
    assert any(
        "METADATA names other-project 1.0, not fid-liar 1.0" in line for line in notes.lines
    ), notes.lines
    (entry,) = loads(tree_page(instance, "mirror", "fid-odd"))["files"]
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(wheel_metadata(odd)).hexdigest()}
    assert entry["requires-python"] is None
    assert any(
        "Requires-Python 'three or newer' is not a specifier; listed without requires-python"
        in line
        for line in notes.lines
    ), notes.lines
