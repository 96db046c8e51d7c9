"""Helpers of the project page tests: distributions with a README, uploads with twine,
logging in with a plain HTTP client, and the HTML checks every page gets."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.browser.conftest import chromium, create_account, mail_server  # noqa: F401 - fixtures
from tests.builders import Dist, Meta, make_sdist, make_wheel
from tests.conftest import LiveServer
from tilsit.config import Settings

TWINE = Path(__file__).resolve().parents[2] / ".tools" / "twine" / "bin" / "twine"
PASSWORD = "correct horse battery staple 42"


def metadata(
    name: str,
    version: str,
    description: str = "",
    content_type: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    summary: str = "A test distribution",
) -> bytes:
    """Core metadata 2.1 with ``description`` as its body (where PyPI reads it)."""
    headers = list(extra or [])
    if content_type is not None:
        headers.append(("Description-Content-Type", content_type))
    # License-Expression is core metadata 2.4 (twine checks).
    level = "2.4" if any(k == "License-Expression" for k, _ in headers) else "2.1"
    head = Meta(name, version, summary=summary, extra=headers, metadata_version=level).render()
    return head + description.encode()


def wheel(
    name: str, version: str, description: str = "", content_type: str | None = None, **kw: object
) -> Dist:
    return make_wheel(
        name,
        version,
        metadata=metadata(name, version, description, content_type, **kw),  # type: ignore[arg-type]
    )


def sdist(name: str, version: str, description: str = "", content_type: str | None = None) -> Dist:
    return make_sdist(name, version, metadata=metadata(name, version, description, content_type))


def twine(
    server: LiveServer, token: str, directory: Path, *dists: Dist, index: str = "main"
) -> None:
    """Upload ``dists`` with twine, as a user would."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [str(d.write(directory)) for d in dists]
    result = subprocess.run(
        [
            str(TWINE),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{server.url}/{index}/legacy/",
            "-u",
            "__token__",
            "-p",
            token,
            *paths,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def logged_in(server: LiveServer, settings: Settings, name: str) -> httpx.Client:
    """An HTTP client with ``name``'s session (the user gets a password first)."""
    create_account(settings, name, PASSWORD)
    client = httpx.Client(base_url=server.url, timeout=60)
    page = client.get("/account/login")
    _keep_cookie(client, page)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post(
        "/account/login",
        data={"csrf_token": token.group(1), "name": name, "password": PASSWORD},
    )
    assert response.status_code in (200, 303), response.text
    _keep_cookie(client, response)
    assert "Log out" in client.get("/account/").text
    return client


def _keep_cookie(client: httpx.Client, response: httpx.Response) -> None:
    """Keep the session cookie by hand: the server sets it ``Secure`` (``__Host-``), which
    an HTTP client does not send back over plain HTTP to 127.0.0.1 on its own."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        client.cookies.set(name, rest.partition(";")[0])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


_URL_ATTRS = {"href", "src", "action", "formaction", "data", "srcset", "poster", "xlink:href"}


def assert_safe(response: httpx.Response) -> None:
    """No script but ours, no event attribute, no URL other than http(s), mailto or this
    site's, and the CSP header."""
    assert "script-src 'self'" in response.headers["content-security-policy"]
    parser = _Tags()
    parser.feed(response.text)
    for tag, attrs in parser.tags:
        if tag == "script":
            assert attrs == [("src", "/_/static/copy.js")], attrs
        for key, value in attrs:
            assert not key.startswith("on"), (tag, key, value)
            assert key != "style", (tag, key, value)
            if key in _URL_ATTRS and value:
                scheme = urlsplit(value.strip()).scheme.lower()
                assert scheme in ("", "http", "https", "mailto"), (tag, key, value)
