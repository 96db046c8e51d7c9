"""Hostile text through every field a project page shows: README in each format,
summary, keywords, project URLs, classifiers, author, yank reasons. No script but
the page's own, no event attribute, no javascript: or data: URL, the CSP on."""

from __future__ import annotations

import hashlib

import pytest

from tests.browse.conftest import assert_safe, metadata, wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.index.manage import create_index, get_index, set_yanked
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.instance import Instance

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1)">'
READMES = {
    "text/markdown": (
        f"# T {SCRIPT}\n\n{IMG}\n\n[click](javascript:alert(1)) [data](data:text/html,<b>x</b>)"
        '\n\n<a href="javascript:alert(1)" onclick="alert(1)">raw</a>\n'
        '<div style="color:red" onmouseover="alert(1)">styled</div>\n'
    ),
    "text/x-rst": (
        "Title\n=====\n\n`click <javascript:alert(1)>`_\n\n"
        ".. image:: javascript:alert(1)\n\n.. raw:: html\n\n   <script>alert(1)</script>\n"
    ),
    "text/plain": f"{SCRIPT} {IMG} javascript:alert(1)",
    "text/x-rst; bad": f"{SCRIPT}\n===\n\n`broken {IMG}",
}
HOSTILE = [
    ("Project-URL", "Home, javascript:alert(1)"),
    ("Project-URL", "Data, data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
    ("Project-URL", f'Quote, https://x.example/"{IMG}'),
    ("Home-page", "JavaScript:alert(1)"),
    ("Keywords", f"{SCRIPT},{IMG}"),
    ("Author", f"{IMG} <x@example.org>"),
    ("Author-email", f"{SCRIPT}@example.org"),
    ("Maintainer", '" onmouseover="alert(1)'),
    ("License", SCRIPT),
]


@pytest.mark.parametrize("content_type", list(READMES))
def test_hostile_fields_never_reach_the_page_as_markup(
    client: AppClient, token: str, instance: Instance, content_type: str
) -> None:
    readme = READMES[content_type]
    dist = wheel(
        "hostile",
        "1.0",
        readme,
        content_type.split(";")[0],
        extra=HOSTILE,
        summary=f"{SCRIPT} {IMG}",
    )
    response = upload(client, dist, token)
    assert response.status_code == 200, response.text
    with instance.db.write() as session:
        set_yanked(
            session,
            get_index(session, "main"),
            "hostile",
            "1.0",
            yanked=True,
            reason=f"{SCRIPT}{IMG}",
        )
    for path in ("/main/project/hostile/", "/main/project/hostile/1.0/"):
        page = client.get(path)
        assert page.status_code == 200
        assert_safe(page)
        assert "<script>alert" not in page.text
        # What is shown as text is escaped, not dropped: the reader sees what was written.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_hostile_metadata_from_an_upstream_never_reaches_the_page_as_markup(
    client: AppClient, instance: Instance
) -> None:
    """A mirror stores what its upstream's metadata says, checked less than an upload:
    classifiers and Requires-Python are whatever the upstream wrote."""
    body = metadata(
        "mirrored-hostile",
        "1.0",
        READMES["text/markdown"],
        "text/markdown",
        extra=[*HOSTILE, ("Classifier", f"Topic :: {SCRIPT}"), ("Requires-Python", IMG)],
        summary=SCRIPT,
    )
    dist = wheel("mirrored-hostile", "1.0")
    instance.blobs.put_bytes(dist.data)
    instance.blobs.put_bytes(body)
    with instance.db.write() as session:
        mirror = create_index(
            session, "mir", "mirror", options={"upstream": "https://up.invalid/simple/"}
        )
        apply_upstream_project(
            session,
            mirror,
            UpstreamProject(
                "mirrored-hostile",
                7,
                [
                    UpstreamFile(
                        filename=dist.filename,
                        url=f"https://files.up.invalid/{dist.filename}",
                        sha256=dist.sha256,
                        size=len(dist.data),
                        upload_time=None,
                        metadata_sha256=hashlib.sha256(body).hexdigest(),
                        yanked=f"{SCRIPT}{IMG}",
                    )
                ],
                versions=["1.0"],
            ),
            stored=set(instance.blobs),
        )
    instance.renderer.catch_up()
    page = client.get("/mir/project/mirrored-hostile/")
    assert page.status_code == 200, page.text
    assert_safe(page)
    assert "Topic :: &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "mirrored from files.up.invalid" in page.text
    assert "Yanked: &lt;script&gt;" in page.text
