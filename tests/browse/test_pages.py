"""Project and release pages of a live server, after real uploads with twine: the README
in each format (and the fallback), metadata, history with badges, files, install
commands; a private index's pages are a 404 for whoever may not read them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.browse.conftest import assert_safe, logged_in, sdist, twine, wheel
from tests.conftest import LiveServer

MARKDOWN = "# Widget heading\n\nSome **bold** text and a [link](https://example.org/docs).\n"
RST = "Widget title\n============\n\nSome *emphasis* here.\n"
PLAIN = "Plain <text> & spaces\n    indented line\n"
BAD_RST = "Broken\n===\n\n`unterminated\n\n.. unknown-directive::\n"
EXTRA = [
    ("Project-URL", "Documentation, https://docs.example.org/widget"),
    ("Project-URL", "Chat, irc://irc.example.org/widget"),
    ("Keywords", "widgets,gadgets"),
    ("Classifier", "Programming Language :: Python :: 3"),
    ("Author", "Ada Lovelace"),
    ("License-Expression", "MIT OR Apache-2.0"),
    ("Requires-Python", ">=3.9"),
]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _publish(server: LiveServer, tmp_path: Path) -> str:
    token = server.token("alice")
    twine(
        server,
        token,
        tmp_path / "dists",
        wheel("widget", "1.0", RST, "text/x-rst"),
        wheel("widget", "1.1", PLAIN, "text/plain"),
        wheel("widget", "1.2", BAD_RST, None),
        wheel("widget", "1.3", MARKDOWN, "text/markdown; variant=GFM", extra=EXTRA),
        sdist("widget", "1.3", MARKDOWN, "text/markdown"),
        wheel("widget", "2.0b1", MARKDOWN, "text/markdown"),
    )
    server.cli("yank", "widget", "1.1", "--index", "main", "--reason", "broke <imports>")
    return token


def test_project_and_release_pages_show_readme_metadata_history_and_files(
    live_server: LiveServer, tmp_path: Path
) -> None:
    _publish(live_server, tmp_path)
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        page = client.get("/main/project/widget/")
        assert page.status_code == 200, page.text
        assert_safe(page)
        html, text = page.text, _text(page.text)
        # The latest final release is described, its Markdown README rendered.
        assert '<span class="project-version">1.3</span>' in html
        assert (
            '<h1 id="user-content-widget-heading">Widget heading' in html
            and "<strong>bold</strong>" in html
        )
        assert "A test distribution" in text and "MIT OR Apache-2.0" in text
        assert "&gt;=3.9" in html and "Ada Lovelace" in text
        assert "Programming Language :: Python :: 3" in text
        assert "<li>widgets</li><li>gadgets</li>" in html
        assert '<a href="https://docs.example.org/widget" rel="nofollow noopener">' in html
        assert "irc://irc.example.org/widget" in text and 'href="irc:' not in html
        # History: newest first, yanked with its reason, the pre-release marked.
        versions = re.findall(r'<a href="/main/project/widget/([^/]+)/">', html)
        assert versions[:5] == ["2.0b1", "1.3", "1.2", "1.1", "1.0"]
        assert "Yanked: broke &lt;imports&gt;" in html and "Pre-release" in html
        # Files of 1.3: both, with kind, tags, size, uploader and hash.
        assert "widget-1.3-py3-none-any.whl" in html and "widget-1.3.tar.gz" in html
        assert "sdist" in text and "wheel" in text and "py3 none any" in text
        assert re.search(r"<td>\s*alice\s*</td>", html)
        assert re.search(r'data-copy="[0-9a-f]{64}"', html)
        assert f"pip install --index-url {live_server.url}/main/simple/ widget" in html
        assert "poetry add --source main widget" in html and "pdm add widget" in html
        assert 'href="/main/simple/widget/"' in html and 'href="/main/pypi/widget/json"' in html
        assert "Manage this project" not in html  # anonymous

        rst = client.get("/main/project/widget/1.0/")
        assert (
            rst.status_code == 200
            and "Widget title" in rst.text
            and "<em>emphasis</em>" in rst.text
        )
        assert "Release history" not in rst.text and 'pypi/widget/1.0/json"' in rst.text
        plain = client.get("/main/project/widget/1.1/")
        assert "<pre>Plain &lt;text&gt; &amp; spaces<br>    indented line" in plain.text
        assert "Yanked: broke &lt;imports&gt;" in plain.text
        bad = client.get("/main/project/widget/1.2/")
        assert "could not be rendered as reStructuredText" in bad.text
        assert '<pre class="readme-raw">Broken\n===\n\n`unterminated' in bad.text
        pre = client.get("/main/project/widget/2.0b1/")
        assert "Pre-release" in pre.text and "Not the latest" in pre.text
        for response in (rst, plain, bad, pre):
            assert_safe(response)

        # Any spelling of the name 301s to the normalised page; any of the version too.
        moved = client.get("/main/project/Widget/1.0/?x=1")
        assert (
            moved.status_code == 301
            and moved.headers["location"] == "/main/project/widget/1.0/?x=1"
        )
        spelled = client.get("/main/project/widget/1.0.0/")
        assert (
            spelled.status_code == 301
            and spelled.headers["location"] == "/main/project/widget/1.0/"
        )
        # Unknown version, project, index: a 404 page that says which.
        missing = client.get("/main/project/widget/9.9/")
        assert missing.status_code == 404 and "no version &#39;9.9&#39;" in missing.text
        assert client.get("/main/project/nothing/").status_code == 404
        assert client.get("/nowhere/project/widget/").status_code == 404
        assert client.get("/main/project/widget/?page=x").status_code == 400
        assert client.get("/main/project/widget/?page=2").status_code == 404


def test_private_pages_are_a_404_for_whoever_may_not_read_them(
    live_server: LiveServer, tmp_path: Path
) -> None:
    live_server.cli("index", "create", "secret", "--private", "--create-policy", "anyone")
    owner_token = live_server.token("olga", index="secret")
    twine(
        live_server,
        owner_token,
        tmp_path / "d",
        wheel("hidden-thing", "1.0", MARKDOWN, "text/markdown"),
        index="secret",
    )
    stranger_token = live_server.token("sam")  # a token, but no read on "secret"
    pages = ("/secret/project/hidden-thing/", "/secret/project/hidden-thing/1.0/")
    unknown = httpx.get(f"{live_server.url}/secret/project/no-such-thing/", timeout=30)
    assert unknown.status_code == 404
    expected = unknown.text.replace("no-such-thing", "hidden-thing")

    anonymous = httpx.Client(base_url=live_server.url, timeout=30)
    stranger = logged_in(live_server, live_server.settings, "sam")
    with_token = httpx.Client(
        base_url=live_server.url, timeout=30, auth=("__token__", stranger_token)
    )
    for client in (anonymous, stranger, with_token):
        for path in pages:
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "location" not in response.headers
            assert "Widget heading" not in response.text and "hidden_thing-1.0" not in response.text
            if client is anonymous and path == pages[0]:
                assert response.text == expected  # in the very words of a missing project

    # The Owner reads both and gets the management link; others never see it.
    owner = logged_in(live_server, live_server.settings, "olga")
    for path in pages:
        response = owner.get(path)
        assert response.status_code == 200 and "Widget heading" in response.text
        assert 'href="/project/secret/hidden-thing/"' in response.text
    assert "private: each client needs" in owner.get(pages[0]).text
    reader = logged_in(live_server, live_server.settings, "rita")
    live_server.cli("index", "grant", "secret", "rita", "read")
    page = reader.get(pages[0])
    assert page.status_code == 200 and "Manage this project" not in page.text
    for client in (anonymous, stranger, with_token, owner, reader):
        client.close()
