"""What a mirror client needs from a tilsit index (issue 3, item 4), checked on a live server.

- an integer ``_last-serial`` on every root entry, and the index's current serial in
  ``meta._last-serial``;
- ``X-PyPI-Last-Serial`` on every page and on ``/pypi/<name>/json``;
- absolute file URLs (``base_url`` set) whose path starts with ``/packages/``;
- ``upload_time_iso_8601`` on every file of the legacy JSON.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest

from tests.bandersnatch.conftest import JSON, Upstream
from tests.builders import make_sdist, make_wheel

_HREF = re.compile(r'<a href="([^"]+)"')
_SERIAL_COMMENT = re.compile(r"<!--SERIAL (\d+)-->\s*$")


@pytest.fixture(scope="module")
def corpus(upstream: Upstream) -> Upstream:
    upstream.upload(
        make_wheel("alpha", "1.0"),
        make_sdist("alpha", "1.0"),
        make_wheel("alpha", "1.1", requires_python=">=3.9"),
        make_wheel("Beta.Pkg", "0.1"),
        make_sdist("Beta.Pkg", "0.1"),
    )
    return upstream


@pytest.fixture
def http(corpus: Upstream) -> Iterator[httpx.Client]:
    with corpus.http() as client:
        yield client


def _entries(upstream: Upstream) -> dict[str, Any]:
    return {p["name"]: p["_last-serial"] for p in upstream.root()[1]["projects"]}


def _header_serial(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    value = response.headers.get("X-PyPI-Last-Serial")
    assert value is not None, f"no X-PyPI-Last-Serial on {response.request.url}"
    assert value.isdigit(), value
    return int(value)


def _legacy_files(document: dict[str, Any]) -> list[dict[str, Any]]:
    files = list(document["urls"])
    for release in document.get("releases", {}).values():
        files += release
    return files


def test_root_entries_carry_integer_serials(corpus: Upstream, http: httpx.Client) -> None:
    _, root = corpus.root()
    assert {p["name"] for p in root["projects"]} == {"alpha", "beta-pkg"}
    for entry in root["projects"]:
        serial = entry["_last-serial"]
        assert type(serial) is int, entry
        # The root's serial of a project is the serial its own page states.
        page = http.get(f"/simple/{entry['name']}/", headers={"Accept": JSON}).json()
        assert page["meta"]["_last-serial"] == serial


def test_root_meta_is_the_current_serial(corpus: Upstream, http: httpx.Client) -> None:
    response, root = corpus.root()
    current = root["meta"]["_last-serial"]
    assert type(current) is int
    assert current == corpus.journal_serial()
    # Only uploads happened: the newest project change is the index's newest change.
    assert current == max(_entries(corpus).values())
    assert _header_serial(response) == current
    page = http.get("/simple/", headers={"Accept": "text/html"})
    match = _SERIAL_COMMENT.search(page.text)
    assert match is not None and int(match[1]) == current
    assert _header_serial(page) == current


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/simple/{name}/", JSON),
        ("/simple/{name}/", "text/html"),
        ("/pypi/{name}/json", None),
        ("/pypi/{name}/{version}/json", None),
    ],
)
def test_serial_header_on_project_pages(
    corpus: Upstream, http: httpx.Client, method: str, path: str, accept: str | None
) -> None:
    entries = _entries(corpus)
    versions = {"alpha": "1.1", "beta-pkg": "0.1"}
    for name, serial in entries.items():
        url = path.format(name=name, version=versions[name])
        headers = {"Accept": accept} if accept else {}
        response = http.request(method, url, headers=headers)
        assert _header_serial(response) == serial, url
        if method == "GET" and path.startswith("/pypi/"):
            assert response.json()["last_serial"] == serial


def test_serials_follow_an_upload(corpus: Upstream, http: httpx.Client) -> None:
    before = _entries(corpus)
    corpus.upload(make_wheel("Beta.Pkg", "0.2"))
    after = _entries(corpus)
    assert after["alpha"] == before["alpha"]
    assert after["beta-pkg"] > before["beta-pkg"]
    assert corpus.serial() == after["beta-pkg"] == corpus.journal_serial()
    assert _header_serial(http.get("/pypi/beta-pkg/json")) == after["beta-pkg"]
    assert _header_serial(http.get("/pypi/alpha/json")) == before["alpha"]


def _check_file_url(upstream: Upstream, http: httpx.Client, url: str, sha256: str) -> None:
    """``url`` is absolute, on the server's own origin, under /packages/, and serves the file."""
    assert url.startswith(f"{upstream.url}/packages/"), url
    path = unquote(urlsplit(url).path)
    assert path == f"/packages/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{path.rsplit('/', 1)[1]}"
    response = http.get(url)
    assert response.status_code == 200, url
    assert hashlib.sha256(response.content).hexdigest() == sha256


def test_simple_pages_link_absolute_file_urls(corpus: Upstream, http: httpx.Client) -> None:
    for name in _entries(corpus):
        page = http.get(f"/simple/{name}/", headers={"Accept": JSON}).json()
        assert page["files"]
        for f in page["files"]:
            _check_file_url(corpus, http, f["url"], f["hashes"]["sha256"])
        text = http.get(f"/simple/{name}/", headers={"Accept": "text/html"}).text
        hrefs = [html.unescape(h) for h in _HREF.findall(text)]
        assert len(hrefs) == len(page["files"])
        for href in hrefs:
            url, _, fragment = href.partition("#sha256=")
            _check_file_url(corpus, http, url, fragment)


def test_legacy_json_links_absolute_file_urls(corpus: Upstream, http: httpx.Client) -> None:
    for name in _entries(corpus):
        document = http.get(f"/pypi/{name}/json").json()
        versions = list(document["releases"])
        documents = [document] + [http.get(f"/pypi/{name}/{v}/json").json() for v in versions]
        for doc in documents:
            for f in _legacy_files(doc):
                _check_file_url(corpus, http, f["url"], f["digests"]["sha256"])
        # Other links are absolute too (on the same origin).
        for key in ("package_url", "project_url", "release_url"):
            assert document["info"][key].startswith(f"{corpus.url}/"), document["info"][key]


def test_legacy_json_has_upload_time_iso_8601(corpus: Upstream, http: httpx.Client) -> None:
    for name in _entries(corpus):
        simple = http.get(f"/simple/{name}/", headers={"Accept": JSON}).json()
        upload_times = {f["filename"]: f["upload-time"] for f in simple["files"]}
        document = http.get(f"/pypi/{name}/json").json()
        files = _legacy_files(document)
        assert {f["filename"] for f in files} == set(upload_times)
        for f in files:
            stamp = f["upload_time_iso_8601"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp), stamp
            moment = datetime.fromisoformat(stamp)
            assert moment.tzinfo is not None and moment.utcoffset() == UTC.utcoffset(None)
            assert stamp == upload_times[f["filename"]]
            # PyPI's older field: the same moment without fraction or zone.
            assert f["upload_time"] == moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_relative_file_urls_resolve_under_packages(corpus: Upstream, http: httpx.Client) -> None:
    """Whatever form a page's URL takes, resolved against the page it is under /packages/."""
    for name in _entries(corpus):
        page_url = f"{corpus.url}/simple/{name}/"
        for f in http.get(page_url, headers={"Accept": JSON}).json()["files"]:
            assert urlsplit(urljoin(page_url, f["url"])).path.startswith("/packages/")


def test_legacy_json_advertises_core_metadata(corpus: Upstream, http: httpx.Client) -> None:
    for name in _entries(corpus):
        simple = http.get(f"/simple/{name}/", headers={"Accept": JSON}).json()
        expected = {f["filename"]: f["core-metadata"] for f in simple["files"]}
        assert any(isinstance(v, dict) for v in expected.values())
        document = http.get(f"/pypi/{name}/json").json()
        for f in _legacy_files(document):
            assert f.get("core-metadata") == expected[f["filename"]], f["filename"]
