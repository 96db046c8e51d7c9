"""Project pages joined from per-release parts are the bytes of the whole page encoded at once.

The renderer keeps each release's parts of its project's pages between renders
(:mod:`tilsit.render.parts`); these tests pin that joining them is exactly the
canonical encoding (so a page never depends on which parts were kept), and that
what is kept is keyed on everything a part depends on and stays bounded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from itertools import chain

from tilsit.render import legacy
from tilsit.render.pages import release_files
from tilsit.render.parts import PageParts
from tilsit.render.snapshot import FileSnap, ProjectSnap, ReleaseSnap
from tilsit.spec.simple import (
    ProjectPage,
    project_html,
    project_html_from_parts,
    project_json,
    project_json_from_parts,
)


def _file(name: str, **changes: object) -> FileSnap:
    base = FileSnap(
        filename=name,
        packagetype="bdist_wheel" if name.endswith(".whl") else "sdist",
        python_version="py3",
        size=100,
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        md5="0" * 32,
        blake2_256="1" * 64,
        metadata_sha256=None,
        requires_python=">=3.9",
        upload_time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        deleted=False,
    )
    return replace(base, **changes)


def _project(root: str = "") -> ProjectSnap:
    releases = (
        ReleaseSnap(
            "1.0",
            False,
            "",
            False,
            (_file("p-1.0.tar.gz"), _file("p-1.0-py3-none-any.whl", upload_time=None)),
        ),
        # Yanked, with a reason that needs escaping in both encodings.
        ReleaseSnap("2.0", True, 'broke "x" <b>', False, (_file("p-2.0.tar.gz"),)),
        # A file yanked on its own, one removed, a non-ASCII requirement.
        ReleaseSnap(
            "2.1rc1",
            False,
            "",
            False,
            (
                _file("p-2.1rc1.tar.gz", yanked=True, yanked_reason="säd"),
                _file("p-2.1rc1-py3-none-any.whl", deleted=True),
                _file("p-2.1rc1-1-py3-none-any.whl", requires_python="<4,≥3"),
            ),
        ),
        ReleaseSnap(
            "3.0", False, "", False, (_file("p-3.0.tar.gz", deleted=True),)
        ),  # no live file
        ReleaseSnap("4.0", False, "", True, (_file("p-4.0.tar.gz"),)),  # removed release
    )
    return ProjectSnap("main", "P", "p", 42, False, releases, files_root=root)


def _read_blob(_sha256: str) -> bytes | None:
    return None


def test_the_legacy_json_is_its_canonical_encoding() -> None:
    for root in ("", "main/"):
        page = legacy.project_json(_project(root), _read_blob, "https://pypi.example.test")
        assert page is not None
        document = json.loads(page)
        assert json.dumps(document, ensure_ascii=False, sort_keys=True).encode() == page
        assert list(document["releases"]) == ["1.0", "2.0", "2.1rc1", "3.0"]
        assert document["releases"]["3.0"] == []
        # PyPI's latest: not yanked, not a pre-release, with a live file.
        assert document["urls"] == document["releases"]["1.0"]
        assert document["info"]["version"] == "1.0"


def test_joined_parts_are_the_whole_simple_pages() -> None:
    project = _project()
    parts = PageParts(keep_from=1).of(project, "")
    whole = ProjectPage(
        name=project.normalized,
        serial=project.serial,
        versions=[r.version for r in project.live_releases],
        files=[f for r in project.live_releases for f in release_files(r, "", "")],
    )
    json_page = project_json_from_parts(
        "p", 42, list(parts), chain.from_iterable(p.simple_json for p in parts.values())
    )
    html_page = project_html_from_parts(
        "p", 42, chain.from_iterable(p.simple_html for p in parts.values())
    )
    assert json_page == project_json(whole)
    assert html_page == project_html(whole)
    document = json.loads(json_page)
    assert json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() == json_page
    assert len(document["files"]) == 5


def test_parts_are_kept_per_release_as_loaded() -> None:
    kept = PageParts(keep_from=1)
    project = _project()
    first = kept.of(project, "")
    assert kept.of(project, "") == first
    assert all(kept.of(project, "")[v] is first[v] for v in first)  # kept, not encoded again
    # A release that changed is a new key: its parts are encoded again, the others kept.
    yanked = replace(project.releases[0], yanked=True, yanked_reason="no")
    changed = replace(project, releases=(yanked, *project.releases[1:]))
    second = kept.of(changed, "")
    assert second["1.0"] is not first["1.0"] and '"yanked": true' in second["1.0"].legacy_files
    assert second["2.0"] is first["2.0"]
    # Where files are linked is part of the key too.
    assert kept.of(project, "https://elsewhere.test")["2.0"] is not first["2.0"]


def test_small_projects_are_not_kept_and_the_whole_is_bounded() -> None:
    kept = PageParts(max_files=6, keep_from=5)
    small = replace(_project(), releases=_project().releases[:1])  # 2 files
    kept.of(small, "")
    assert len(kept) == 0
    kept.of(_project(), "")
    assert 0 < kept.files <= 6
    for n in range(5):  # another project's releases push the oldest out
        kept.of(replace(_project(), normalized=f"q{n}", name=f"q{n}"), "")
        assert kept.files <= 6
