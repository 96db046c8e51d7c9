"""Project pages of a mirror and of a virtual index over it with a cool-down: where the
project came from, and only what the virtual index shows (in-process, as a sync applies
a project)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from tests.browse.conftest import assert_safe, metadata, wheel
from tests.conftest import AppClient
from tilsit.index.manage import create_index, get_index
from tilsit.index.policies import set_policy
from tilsit.index.policy_doc import parse_policy
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.index.virtual import set_members
from tilsit.instance import Instance


def _file(instance: Instance, version: str, uploaded: datetime) -> UpstreamFile:
    body = metadata("fresh", version, f"Notes of {version}", "text/markdown")
    dist = wheel("fresh", version, f"Notes of {version}", "text/markdown")
    instance.blobs.put_bytes(dist.data)
    instance.blobs.put_bytes(body)
    return UpstreamFile(
        filename=dist.filename,
        url=f"https://files.upstream.invalid/{dist.filename}",
        sha256=dist.sha256,
        size=len(dist.data),
        upload_time=uploaded,
        metadata_sha256=hashlib.sha256(body).hexdigest(),
    )


def test_mirror_and_virtual_pages_say_where_from_and_show_what_the_policy_lets_through(
    client: AppClient, instance: Instance
) -> None:
    now = datetime.now(UTC)
    with instance.db.write() as session:
        create_index(session, "internal")
        mirror = create_index(
            session,
            "mir",
            "mirror",
            options={"upstream": "https://user:secret@upstream.invalid/simple/?key=k"},
        )
        virtual = create_index(session, "all", "virtual")
        set_members(session, virtual, ["internal", "mir"], actor="test")
        text = 'cooldown = { duration = "7 days" }'
        set_policy(session, virtual, parse_policy(text, "test.toml"), text, "t")
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            UpstreamProject(
                "fresh",
                42,
                [
                    _file(instance, "1.0", now - timedelta(days=30)),
                    _file(instance, "2.0", now - timedelta(hours=1)),
                ],
                versions=["1.0", "2.0"],
            ),
            stored=set(instance.blobs),
        )
        assert mirror.kind == "mirror"
    instance.renderer.catch_up()

    mirrored = client.get("/mir/project/fresh/")
    assert mirrored.status_code == 200, mirrored.text
    assert_safe(mirrored)
    html = mirrored.text
    assert (
        'takes its projects from <span class="url-text">https://upstream.invalid/simple/</span>'
        in html
    )
    assert "secret" not in html and "key=k" not in html  # no credentials, no query
    assert "This project was last fetched at" in html
    assert "mirrored from files.upstream.invalid" in html
    assert '<span class="project-version">2.0</span>' in html and "Notes of 2.0" in html

    shown = client.get("/all/project/fresh/")
    assert shown.status_code == 200, shown.text
    assert_safe(shown)
    html = shown.text
    # The cool-down hides 2.0: the virtual index's page is of 1.0 alone.
    assert '<span class="project-version">1.0</span>' in html and "Notes of 1.0" in html
    assert "fresh-2.0" not in html and "/all/project/fresh/2.0/" not in html
    assert "index mir (mirror)" in html and 'href="/_/why/all/fresh"' in html
    assert "/all/packages/" in html  # files linked under the virtual index
    hidden = client.get("/all/project/fresh/2.0/")
    assert hidden.status_code == 404
    assert client.get("/mir/project/fresh/2.0/").status_code == 200
