"""PEP 792 project status: read from upstream pages, kept, and shown again.

A mirror's page carries its upstream's status, and so does a virtual index's page
of a name the mirror supplies (policies deny by it: docs/policies.md).
"""

from __future__ import annotations

import json

from tests.virtual.conftest import apply, mirrored, page
from tilsit.instance import Instance
from tilsit.upstream.pages import parse_project_page

JSON = "application/vnd.pypi.simple.v1+json"


def _json_page(status: object) -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": "1.4", "_last-serial": 3},
            "name": "old",
            "project-status": status,
            "files": [],
        }
    ).encode()


def test_the_status_is_read_from_json_and_html_pages() -> None:
    url = "https://upstream.invalid/simple/old/"
    for status, expected in [
        ({"status": "archived"}, "archived"),
        ({"status": "quarantined", "reason": "malware"}, "quarantined"),
        ({"status": "sleeping"}, "active"),  # unknown: the default
        ("archived", "active"),  # not an object
    ]:
        parsed = parse_project_page(_json_page(status), JSON, url, "old")
        assert parsed.project.status == expected, status
    html = (
        b'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.4">'
        b'<meta name="pypi:project-status" content="deprecated"></head><body></body></html>'
    )
    assert parse_project_page(html, "text/html", url, "old").project.status == "deprecated"


def test_a_mirrored_status_reaches_the_mirrors_and_the_virtual_indexs_pages(
    stack: Instance,
) -> None:
    from dataclasses import replace

    from tilsit.db.models import ProjectRow
    from tilsit.index.manage import get_index
    from tilsit.index.upstream import UpstreamProject, apply_upstream_project

    _, one = mirrored(stack, "old", "1.0")
    apply(stack, "old", 3, one)
    with stack.db.write() as session:
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            replace(UpstreamProject("old", 4, [one], versions=["1.0"]), status="archived"),
            stored=set(stack.blobs),
        )
        assert session.query(ProjectRow).filter_by(normalized="old").first() is not None
    stack.renderer.catch_up()
    for index in ("mir", "all"):
        doc = page(stack, index, "old")
        assert doc is not None and doc["project-status"] == {"status": "archived"}, index
    html = (stack.settings.tree_dir / "all/simple/old/index.html").read_text()
    assert '<meta name="pypi:project-status" content="archived">' in html
