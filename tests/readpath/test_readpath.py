"""The read path, one table of cases, against tilsit's server and against nginx.

Every test runs once per ``target`` (see conftest.py). Where tilsit's answer is
the reference, the nginx run also checks that its answer is byte-for-byte the
same (body, ETag, X-PyPI-Last-Serial), not just of the same kind.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.builders import make_wheel
from tests.readpath.conftest import Corpus, Target
from tests.uploads import upload
from tilsit.spec.simple import HTML, JSON, V1_HTML

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
PDM = PIP  # unearth sends pip's header
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
PAGE_CACHE = "max-age=600, public"
IMMUTABLE = "max-age=31536000, immutable, public"

WHEEL = "foo_bar-1.0-py3-none-any.whl"
SDIST = "foo_bar-1.0.tar.gz"
BIG = "big-1.0-py3-none-any.whl"


def get(target: Target, path: str, accept: str | None = None, **headers: str) -> httpx.Response:
    if accept is not None:
        headers["Accept"] = accept
    return target.http.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def same_as_tilsit(target: Target, response: httpx.Response) -> None:
    """The nginx answer is tilsit's: same status, body, ETag and serial."""
    request = response.request
    reference = target.reference.request(
        request.method,
        request.url.raw_path.decode(),
        headers={
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("accept", "range", "if-none-match")
        },
    )
    assert response.status_code == reference.status_code
    assert response.content == reference.content
    for name in ("etag", "x-pypi-last-serial", "content-type", "cache-control", "vary"):
        assert response.headers.get(name) == reference.headers.get(name), name


# --- content negotiation --------------------------------------------------------------

NEGOTIATION = [
    # (Accept, query string, expected Content-Type or 406)
    (None, "", HTML),
    ("*/*", "", HTML),
    ("text/html", "", HTML),
    ("TEXT/HTML", "", HTML),
    (PIP, "", JSON),
    (PDM, "", JSON),
    (UV, "", JSON),
    (POETRY, "", JSON),
    ("application/vnd.pypi.simple.v1+html", "", V1_HTML),
    ("application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", "", V1_HTML),
    ("application/vnd.pypi.simple.v1+json;q=0, text/html", "", HTML),
    (
        "application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html;q=0.5",
        "",
        JSON,
    ),
    ("text/html, application/vnd.pypi.simple.v1+json;q=0.5", "", HTML),
    ("application/vnd.pypi.simple.v1+json; q=bogus, text/html;q=0.1", "", HTML),
    ("text/*", "", HTML),
    ("application/*", "", JSON),
    ("application/json, */*;q=0.1", "", HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.001, */*;q=0.001", "", JSON),
    ("image/png", "", 406),
    ("text/html;q=0", "", 406),
    ("*/*;q=0", "", 406),
    ("application/json", "", 406),
    ("application/vnd.pypi.simple.v2+json", "", 406),
    # ?format= wins over Accept
    ("text/html", "format=json", JSON),
    (PIP, "format=html", HTML),
    (None, "format=application/vnd.pypi.simple.v1%2Bjson", JSON),
    (None, "format=application/vnd.pypi.simple.v1%2Bhtml", V1_HTML),
    (PIP, "format=text/html", HTML),
    (PIP, "format=", JSON),  # blank: ignored
    (PIP, "x=1", JSON),
    (None, "format=xml", 406),
    (None, "format=application/vnd.pypi.simple.v1+json", JSON),  # an unencoded "+" as meant
]


@pytest.mark.parametrize("page", ["/simple/foo-bar/", "/simple/", "/team/simple/internal-tool/"])
@pytest.mark.parametrize(("accept", "query", "expected"), NEGOTIATION)
def test_negotiation(
    target: Target, page: str, accept: str | None, query: str, expected: str | int
) -> None:
    response = get(target, f"{page}?{query}" if query else page, accept)
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == PAGE_CACHE
    if expected == 406:
        assert response.status_code == 406
        return
    assert response.status_code == 200
    assert response.headers["content-type"] == expected
    if expected == JSON:
        assert response.json()["meta"]["api-version"] == "1.4"
    else:
        assert response.text.startswith("<!DOCTYPE html>")
    same_as_tilsit(target, response)


# --- redirects -------------------------------------------------------------------------

REDIRECTS = [
    ("/simple", "/simple/"),
    ("/simple?format=json", "/simple/?format=json"),
    ("/main/simple", "/main/simple/"),
    ("/team/simple", "/team/simple/"),
    ("/simple/foo-bar", "/simple/foo-bar/"),
    ("/simple/Foo.Bar/", "/simple/foo-bar/"),
    ("/simple/Foo.Bar", "/simple/foo-bar/"),
    ("/simple/foo_bar/", "/simple/foo-bar/"),
    ("/simple/FOO__-.bar/", "/simple/foo-bar/"),
    ("/simple/Foo.Bar/?format=json&x=%2F", "/simple/foo-bar/?format=json&x=%2F"),
    ("/main/simple/Foo.Bar/", "/main/simple/foo-bar/"),
    ("/team/simple/Internal_Tool", "/team/simple/internal-tool/"),
    ("/pypi/Foo.Bar/json", "/pypi/foo-bar/json"),
    ("/pypi/foo-bar/2.0-RC1/json", "/pypi/foo-bar/2.0rc1/json"),
    ("/pypi/Foo_Bar/v2.0.0rc1/json?x=1", "/pypi/foo-bar/2.0.0rc1/json?x=1"),
    ("/main/pypi/FOO_BAR/json", "/main/pypi/foo-bar/json"),
    ("/team/pypi/internal_tool/0.1/json", "/team/pypi/internal-tool/0.1/json"),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("path", "location"), REDIRECTS)
def test_redirect(target: Target, method: str, path: str, location: str) -> None:
    response = target.http.request(method, path)
    assert response.status_code == 301
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    "path",
    [
        "/simple/Foo.Bar/",
        "/pypi/Foo.Bar/json",
        "/pypi/foo-bar/2.0-RC1/json",
        "/simple/foo_bar",
    ],
)
def test_redirect_lands_on_the_page(target: Target, path: str) -> None:
    response = target.http.get(path, follow_redirects=True)
    assert response.status_code == 200
    assert len(response.history) == 1


# --- not found and not allowed -----------------------------------------------------------

NOT_FOUND = [
    "/simple/nope/",
    "/main/simple/nope/",
    "/team/simple/foo-bar/",  # another index's project
    "/nosuch/simple/",
    "/nosuch/simple/Foo.Bar/",  # unknown index: 404, not a redirect
    "/nosuch/pypi/foo-bar/json",
    "/simple/foo-bar/extra/",
    "/simple/foo-bar/index.html",
    "/main/simple/foo-bar/index.v1.json",
    "/pypi/nope/json",
    "/pypi/foo-bar/9.9/json",
    "/pypi/foo-bar/",
    "/pypi/foo-bar/1.0/json/extra",
    "/packages/",
    "/packages/aa/bb/cc/nope.whl",
    "/packages/00/00/00/foo_bar-1.0-py3-none-any.whl",
    "/.serial",
    "/main/.serial",
    "/nothing-here",
]


@pytest.mark.parametrize("path", NOT_FOUND)
def test_not_found(target: Target, path: str) -> None:
    assert get(target, path).status_code == 404
    assert target.http.head(path).status_code == 404


def test_sdist_has_no_metadata_file(target: Target, corpus: Corpus) -> None:
    assert get(target, corpus.path(SDIST) + ".metadata").status_code == 404
    assert get(target, corpus.path(WHEEL) + ".metadata").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/simple/"),
        ("POST", "/simple/foo-bar/"),
        ("DELETE", "/main/simple/foo-bar/"),
        ("PUT", "/pypi/foo-bar/json"),
        ("POST", "/packages/aa/bb/cc/x.whl"),
    ],
)
def test_read_path_refuses_other_methods(target: Target, method: str, path: str) -> None:
    response = target.http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


# --- pages: headers, ETag and 304, HEAD, serial ------------------------------------------

PAGES = [
    # (path, Accept, Content-Type, has a serial, has Vary)
    ("/simple/", None, HTML, True, True),
    ("/simple/", PIP, JSON, True, True),
    ("/simple/foo-bar/", UV, JSON, True, True),
    ("/simple/foo-bar/", None, HTML, True, True),
    ("/simple/foo-bar/", "application/vnd.pypi.simple.v1+html", V1_HTML, True, True),
    ("/pypi/foo-bar/json", None, "application/json", True, False),
    ("/pypi/foo-bar/1.0/json", None, "application/json", True, False),
    ("/team/pypi/internal-tool/json", None, "application/json", True, False),
]


@pytest.mark.parametrize(("path", "accept", "content_type", "serial", "vary"), PAGES)
def test_page_headers(
    target: Target, path: str, accept: str | None, content_type: str, serial: bool, vary: bool
) -> None:
    response = get(target, path, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == PAGE_CACHE
    assert response.headers.get("vary") == ("Accept" if vary else None)
    assert "content-encoding" not in response.headers
    assert response.headers["etag"].startswith('"')
    if serial:
        stated = int(response.headers["x-pypi-last-serial"])
        if content_type == JSON:
            assert response.json()["meta"]["_last-serial"] == stated
        elif content_type == "application/json":
            assert response.json()["last_serial"] == stated
        else:
            assert response.text.rstrip().endswith(f"<!--SERIAL {stated}-->")
    if content_type == "application/json":
        assert response.headers["access-control-allow-origin"] == "*"
    same_as_tilsit(target, response)


@pytest.mark.parametrize(("path", "accept", "content_type", "serial", "vary"), PAGES)
def test_page_head(
    target: Target, path: str, accept: str | None, content_type: str, serial: bool, vary: bool
) -> None:
    full = get(target, path, accept)
    head = target.http.head(path, headers={"Accept": accept} if accept else {})
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(full.content)
    for name in ("content-type", "etag", "x-pypi-last-serial", "cache-control", "vary"):
        assert head.headers.get(name) == full.headers.get(name)


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),
        ('"other", {etag}', 304),
        ("*", 304),
        ('"other"', 200),
        ("{etag}x", 200),
    ],
)
@pytest.mark.parametrize(
    ("path", "accept"),
    [("/simple/foo-bar/", PIP), ("/simple/", None), ("/pypi/foo-bar/json", None)],
)
def test_page_conditional(
    target: Target, path: str, accept: str | None, if_none_match: str, status: int
) -> None:
    first = get(target, path, accept)
    etag = first.headers["etag"]
    response = get(target, path, accept, If_None_Match=if_none_match.format(etag=etag))
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert response.headers["x-pypi-last-serial"] == first.headers["x-pypi-last-serial"]
    assert response.headers["cache-control"] == PAGE_CACHE
    if status == 304:
        assert response.content == b""


def test_each_media_type_has_its_own_etag(target: Target) -> None:
    tags = {get(target, "/simple/foo-bar/", a).headers["etag"] for a in (PIP, None)}
    assert len(tags) == 2
    # The HTML file is the same for both HTML media types.
    v1 = get(target, "/simple/foo-bar/", "application/vnd.pypi.simple.v1+html")
    assert v1.headers["etag"] == get(target, "/simple/foo-bar/").headers["etag"]


# --- files ------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", [WHEEL, SDIST, BIG])
def test_file(target: Target, corpus: Corpus, filename: str) -> None:
    dist = corpus.dists[filename]
    response = get(target, corpus.path(filename), Accept_Encoding="gzip, br")
    assert response.status_code == 200
    assert response.content == dist.data
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["etag"] == f'"{dist.sha256}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert "content-encoding" not in response.headers
    head = target.http.head(corpus.path(filename))
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(dist.data)
    assert head.headers["etag"] == response.headers["etag"]


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [("{etag}", 304), ("W/{etag}", 304), ('"x", {etag}', 304), ("*", 304), ('"x"', 200)],
)
def test_file_conditional(target: Target, corpus: Corpus, if_none_match: str, status: int) -> None:
    etag = f'"{corpus.dists[WHEEL].sha256}"'
    response = get(target, corpus.path(WHEEL), If_None_Match=if_none_match.format(etag=etag))
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == IMMUTABLE


def _ranges(size: int) -> list[tuple[str, int, tuple[int, int] | None]]:
    # (Range, status, (first, last) of the body)
    middle = size // 3
    return [
        ("bytes=0-99", 206, (0, 99)),
        (f"bytes={middle}-{middle + 99}", 206, (middle, middle + 99)),
        (f"bytes={size - 10}-", 206, (size - 10, size - 1)),
        ("bytes=-300", 206, (size - 300, size - 1)),
        (f"bytes=-{size + 10}", 206, (0, size - 1)),
        (f"bytes=100-{size * 2}", 206, (100, size - 1)),
        ("bytes=0-", 206, (0, size - 1)),
        (f"bytes={size}-", 416, None),
        (f"bytes={size + 5}-{size + 9}", 416, None),
        ("bytes=-0", 416, None),
        ("bytes=0-0,5-9", 200, (0, size - 1)),  # several ranges: the whole file
        ("items=0-9", 200, (0, size - 1)),
    ]


@pytest.mark.parametrize("case", range(12))
@pytest.mark.parametrize("filename", [WHEEL, BIG])
def test_range(target: Target, corpus: Corpus, filename: str, case: int) -> None:
    data = corpus.dists[filename].data
    range_header, status, span = _ranges(len(data))[case]
    response = get(target, corpus.path(filename), Range=range_header)
    assert response.status_code == status, range_header
    if status == 416:
        assert response.headers["content-range"] == f"bytes */{len(data)}"
        return
    assert span is not None
    first, last = span
    assert response.content == data[first : last + 1]
    assert int(response.headers["content-length"]) == last - first + 1
    if status == 206:
        assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert response.headers["etag"] == f'"{corpus.dists[filename].sha256}"'


@pytest.mark.parametrize(("matches", "status"), [(True, 206), (False, 200)])
def test_if_range(target: Target, corpus: Corpus, matches: bool, status: int) -> None:
    dist = corpus.dists[BIG]
    tag = f'"{dist.sha256}"' if matches else '"0000"'
    response = get(target, corpus.path(BIG), Range="bytes=10-19", If_Range=tag)
    assert response.status_code == status
    assert response.content == (dist.data[10:20] if matches else dist.data)


def _wheel_metadata(dist_data: bytes) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(dist_data)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


def test_core_metadata_file(target: Target, corpus: Corpus) -> None:
    path = corpus.path(WHEEL) + ".metadata"
    response = get(target, path, Accept_Encoding="gzip")
    assert response.status_code == 200
    assert response.content == _wheel_metadata(corpus.dists[WHEEL].data)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["cache-control"] == IMMUTABLE
    assert "content-encoding" not in response.headers
    assert "x-pypi-last-serial" not in response.headers
    # PEP 658: the page states the metadata file's hash.
    page = get(target, "/simple/foo-bar/", PIP).json()
    entry = next(f for f in page["files"] if f["filename"] == WHEEL)
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(response.content).hexdigest()}
    etag = response.headers["etag"]
    assert get(target, path, If_None_Match=etag).status_code == 304
    head = target.http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag
    same_as_tilsit(target, response)


# --- what the pages say ------------------------------------------------------------------


def test_project_page_links_serve(target: Target, corpus: Corpus) -> None:
    page = get(target, "/simple/foo-bar/", PIP).json()
    assert page["name"] == "foo-bar"
    assert sorted(f["filename"] for f in page["files"]) == sorted(
        [WHEEL, SDIST, "foo_bar-2.0rc1-py3-none-any.whl"]
    )
    for entry in page["files"]:
        response = target.http.get(entry["url"])
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == entry["hashes"]["sha256"]


def test_requires_python_escaped(target: Target) -> None:
    html = get(target, "/simple/foo-bar/").text
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in html
    files = get(target, "/simple/foo-bar/", PIP).json()["files"]
    assert {f["filename"]: f["requires-python"] for f in files}[WHEEL] == ">=3.8,<4"


def test_yanked_file(target: Target) -> None:
    html = get(target, "/simple/oldie/").text
    line = next(x for x in html.splitlines() if "oldie-1.0-" in x)
    assert 'data-yanked="broken &lt;b&gt;&quot;&amp;&lt;/b&gt;"' in line
    assert "data-yanked" not in next(x for x in html.splitlines() if "oldie-1.1-" in x)
    files = {f["filename"]: f for f in get(target, "/simple/oldie/", UV).json()["files"]}
    assert files["oldie-1.0-py3-none-any.whl"]["yanked"] == 'broken <b>"&</b>'
    assert files["oldie-1.1-py3-none-any.whl"]["yanked"] is False
    legacy = get(target, "/pypi/oldie/1.0/json").json()
    assert legacy["info"]["yanked"] is True
    assert legacy["info"]["yanked_reason"] == 'broken <b>"&</b>'
    assert legacy["urls"][0]["yanked"] is True
    # The latest release is the highest one not yanked.
    assert get(target, "/pypi/oldie/json").json()["info"]["version"] == "1.1"


def test_legacy_json(target: Target, corpus: Corpus) -> None:
    project = get(target, "/pypi/foo-bar/json").json()
    assert project["info"]["version"] == "1.0"  # 2.0rc1 is a pre-release
    assert sorted(project["releases"]) == ["1.0", "2.0rc1"]
    assert {u["filename"] for u in project["urls"]} == {WHEEL, SDIST}
    version = get(target, "/pypi/foo-bar/2.0rc1/json").json()
    assert version["info"]["version"] == "2.0rc1"
    assert version["urls"][0]["digests"]["sha256"] == (
        corpus.dists["foo_bar-2.0rc1-py3-none-any.whl"].sha256
    )
    trailing = get(target, "/pypi/foo-bar/json/")
    assert trailing.status_code == 200 and trailing.json() == project


def test_index_pages(target: Target) -> None:
    names = [p["name"] for p in get(target, "/simple/", PIP).json()["projects"]]
    # (test_upload_through_the_server adds fresh-* projects)
    assert [n for n in names if not n.startswith("fresh-")] == ["big", "foo-bar", "oldie", "toggle"]
    team = [p["name"] for p in get(target, "/team/simple/", PIP).json()["projects"]]
    assert team == ["internal-tool"]
    assert get(target, "/main/simple/", PIP).content == get(target, "/simple/", PIP).content


# --- writes: seen at once on both servers -------------------------------------------------


def test_yank_is_seen_at_once(target: Target, corpus: Corpus) -> None:
    """A re-render replaces the page; neither server may answer from a stale copy."""
    before = get(target, "/simple/toggle/", PIP)
    yanked = before.json()["files"][0]["yanked"] is not False
    corpus.tilsit.cli("unyank" if yanked else "yank", "toggle", "1.0")
    after = get(target, "/simple/toggle/", PIP)
    assert (after.json()["files"][0]["yanked"] is not False) is not yanked
    assert after.headers["etag"] != before.headers["etag"]
    assert int(after.headers["x-pypi-last-serial"]) > int(before.headers["x-pypi-last-serial"])
    stale = get(target, "/simple/toggle/", PIP, If_None_Match=before.headers["etag"])
    assert stale.status_code == 200
    same_as_tilsit(target, after)


def test_upload_through_the_server(target: Target, corpus: Corpus) -> None:
    """nginx hands /legacy/ to tilsit; the new page is then served from the tree."""
    name = f"fresh-{target.name}"
    dist = make_wheel(name, "1.0")
    response = upload(target.http, dist, corpus.token, "/legacy/")
    assert response.status_code == 200, response.text
    page = get(target, f"/simple/{name}/", PIP)
    assert page.status_code == 200
    assert [f["filename"] for f in page.json()["files"]] == [dist.filename]
    assert name in [p["name"] for p in get(target, "/simple/", PIP).json()["projects"]]


def test_operations_reach_tilsit(target: Target) -> None:
    response = get(target, "/_/health")
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "ok"
