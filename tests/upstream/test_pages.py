"""Reading upstream simple pages: PEP 691 JSON and PEP 503 HTML, as tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tilsit.spec.simple import (
    JSON,
    IndexEntry,
    ProjectPage,
    SimpleFile,
    index_html,
    index_json,
    project_html,
    project_json,
)
from tilsit.upstream.errors import InvalidUpstreamPage, UpstreamProtocolError
from tilsit.upstream.pages import UNKNOWN_SIZE, parse_project_page, parse_root_page

URL = "https://up.example/simple/demo/"
A, B, C = "a" * 64, "b" * 64, "c" * 64
WHEEL = "demo-1.0-py3-none-any.whl"


def _json(*files: dict[str, Any], **top: Any) -> bytes:
    doc = {"meta": {"api-version": "1.1", "_last-serial": 7}, "name": "demo", "files": list(files)}
    doc.update(top)
    return json.dumps(doc).encode()


def _file(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "filename": WHEEL,
        "url": f"../../files/{WHEEL}",
        "hashes": {"sha256": A},
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def _html(*anchors: str, serial: int | None = 7) -> bytes:
    tail = f"<!--SERIAL {serial}-->" if serial is not None else ""
    return f"<!DOCTYPE html><html><body>{''.join(anchors)}</body></html>{tail}".encode()


@pytest.mark.parametrize(
    ("entry", "field", "expected"),
    [
        (_file(), "url", f"https://up.example/files/{WHEEL}"),
        (_file(url=f"https://cdn.example/x/{WHEEL}#frag"), "url", f"https://cdn.example/x/{WHEEL}"),
        (_file(hashes={"sha256": A.upper()}), "sha256", A),
        (_file(size=12), "size", 12),
        (_file(), "size", UNKNOWN_SIZE),  # api 1.0 pages may lack size
        (_file(size=True), "size", UNKNOWN_SIZE),
        (_file(**{"requires-python": ">=3.8"}), "requires_python", ">=3.8"),
        (_file(yanked=True), "yanked", ""),
        (_file(yanked="broken"), "yanked", "broken"),
        (_file(yanked=False), "yanked", None),
        (_file(yanked=""), "yanked", None),  # as pip reads it
        (_file(**{"core-metadata": {"sha256": B}}), "metadata_sha256", B),
        (_file(**{"dist-info-metadata": {"sha256": B}}), "metadata_sha256", B),  # before PEP 714
        (_file(**{"core-metadata": True}), "metadata_sha256", None),  # no hash: not verifiable
        (_file(**{"core-metadata": False}), "metadata_sha256", None),
        (_file(**{"core-metadata": {"md5": "x"}}), "metadata_sha256", None),
        (
            _file(**{"upload-time": "2024-01-02T03:04:05.123456Z"}),
            "upload_time",
            datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        ),
        (_file(**{"upload-time": "yesterday"}), "upload_time", None),
    ],
)
def test_json_file_fields(entry: dict[str, Any], field: str, expected: object) -> None:
    parsed = parse_project_page(_json(entry), JSON, URL, "demo")
    assert getattr(parsed.project.files[0], field) == expected


@pytest.mark.parametrize(
    ("anchor", "field", "expected"),
    [
        (
            f'<a href="../../files/{WHEEL}#sha256={A}">{WHEEL}</a>',
            "url",
            f"https://up.example/files/{WHEEL}",
        ),
        (f'<a href="/f/{WHEEL}#sha256={A}">{WHEEL}</a>', "sha256", A),
        (f'<a href="/f/{WHEEL}#sha256={A}">{WHEEL}</a>', "size", UNKNOWN_SIZE),
        (
            f'<a href="/f/{WHEEL}#sha256={A}" data-requires-python="&gt;=3.8,&lt;4">{WHEEL}</a>',
            "requires_python",
            ">=3.8,<4",
        ),
        (f'<a href="/f/{WHEEL}#sha256={A}" data-yanked>{WHEEL}</a>', "yanked", ""),
        (f'<a href="/f/{WHEEL}#sha256={A}" data-yanked="">{WHEEL}</a>', "yanked", ""),
        (
            f'<a href="/f/{WHEEL}#sha256={A}" data-yanked="no &amp; way">{WHEEL}</a>',
            "yanked",
            "no & way",
        ),
        (f'<a href="/f/{WHEEL}#sha256={A}">{WHEEL}</a>', "yanked", None),
        (
            f'<a href="/f/{WHEEL}#sha256={A}" data-core-metadata="sha256={B}">{WHEEL}</a>',
            "metadata_sha256",
            B,
        ),
        (
            f'<a href="/f/{WHEEL}#sha256={A}" data-dist-info-metadata="sha256={B}">{WHEEL}</a>',
            "metadata_sha256",
            B,
        ),
        (
            f'<a href="/f/{WHEEL}#sha256={A}" data-core-metadata="true">{WHEEL}</a>',
            "metadata_sha256",
            None,
        ),
        (f'<a href="/f/{WHEEL}#md5=00&amp;sha256={A}">{WHEEL}</a>', "sha256", A),
        (f'<a href="/f/{WHEEL}#sha256={A}"></a>', "filename", WHEEL),  # no text: from the URL
        (f'<a href="/f/demo-1.0%2Bx.tar.gz#sha256={A}"></a>', "filename", "demo-1.0+x.tar.gz"),
    ],
)
def test_html_anchor_fields(anchor: str, field: str, expected: object) -> None:
    parsed = parse_project_page(_html(anchor), "text/html; charset=utf-8", URL, "demo")
    assert getattr(parsed.project.files[0], field) == expected


def test_html_base_tag_and_serial() -> None:
    body = (
        f'<html><head><base href="https://files.example/root/"></head><body>'
        f'<a href="{WHEEL}#sha256={A}">{WHEEL}</a></body></html>\n<!--SERIAL 42-->\n'
    ).encode()
    parsed = parse_project_page(body, "text/html", URL, "demo", header_serial=3)
    assert parsed.project.files[0].url == f"https://files.example/root/{WHEEL}"
    assert parsed.project.serial == parsed.page_serial == 42


@pytest.mark.parametrize(
    ("body", "content_type", "header", "expected"),
    [
        (_json(), JSON, None, 7),
        (_json(), JSON, 9, 7),  # the page's own serial wins
        (_json(meta={"api-version": "1.0"}), JSON, 9, 9),  # else the header
        (_json(meta={"api-version": "1.0"}), JSON, None, None),
        (_html(serial=None), "text/html", 5, 5),
        (_html(serial=11), "application/vnd.pypi.simple.v1+html", None, 11),
    ],
)
def test_project_serial(
    body: bytes, content_type: str, header: int | None, expected: int | None
) -> None:
    assert (
        parse_project_page(body, content_type, URL, "demo", header_serial=header).project.serial
        == expected
    )


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (_json(_file(hashes={"md5": "0" * 32})), JSON, "no sha256"),
        (_json(_file(hashes={"sha256": "short"})), JSON, "no sha256"),
        (_json(_file(filename="../evil.whl")), JSON, "refused file name"),
        (_json(_file(), _file()), JSON, "listed twice"),
        (_html(f'<a href="/f/{WHEEL}">{WHEEL}</a>'), "text/html", "no sha256"),
    ],
)
def test_files_that_are_skipped(body: bytes, content_type: str, reason: str) -> None:
    parsed = parse_project_page(body, content_type, URL, "demo")
    assert [s.reason for s in parsed.skipped if reason in s.reason]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", JSON, "invalid JSON"),
        (b"[]", JSON, "not an object"),
        (_json(meta={"api-version": "2.0"}), JSON, "unsupported simple API version"),
        (_json(name="other"), JSON, "page is for 'other'"),
        (_json(files={}), JSON, "'files' is not a list"),
        (_json({"url": 3}), JSON, "lacks a url"),
        (_json(versions=[1]), JSON, "'versions'"),
        (b"\xff\xfe", "text/html", "not UTF-8"),
        (b"<html></html>", "application/pdf", "unexpected content type"),
        (
            b'<meta name="pypi:repository-version" content="2.0">',
            "text/html",
            "unsupported simple API version",
        ),
    ],
)
def test_invalid_pages(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidUpstreamPage, match=message) as caught:
        parse_project_page(body, content_type, URL, "demo")
    assert isinstance(caught.value, UpstreamProtocolError)
    assert caught.value.url == URL


def test_json_versions_and_spelling() -> None:
    body = _json(_file(), name="Demo", versions=["1.0", "2.0"])
    project = parse_project_page(body, JSON, URL, "demo", etag='"x"').project
    assert (project.name, project.versions, project.etag) == ("Demo", ("1.0", "2.0"), '"x"')


def test_tilsit_pages_read_back() -> None:
    """What tilsit renders, tilsit reads: every field survives a round trip."""
    moment = datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    files = [
        SimpleFile(WHEEL, f"/packages/{WHEEL}", A, 10, moment, ">=3.8", "why & <how>", B),
        SimpleFile("demo-1.0.tar.gz", "https://x.example/demo-1.0.tar.gz", C, 20, moment),
    ]
    page = ProjectPage("demo", 12, ["1.0"], files)
    from_json = parse_project_page(project_json(page), JSON, URL, "demo").project
    from_html = parse_project_page(project_html(page), "text/html", URL, "demo").project
    for project in (from_json, from_html):
        assert project.serial == 12
        assert [
            (f.filename, f.sha256, f.requires_python, f.yanked, f.metadata_sha256)
            for f in project.files
        ] == [
            (WHEEL, A, ">=3.8", "why & <how>", B),
            ("demo-1.0.tar.gz", C, None, None, None),
        ]
        assert [f.upload_time for f in project.files] == [moment, moment]
        assert project.files[0].url == f"https://up.example/packages/{WHEEL}"
    assert [f.size for f in from_json.files] == [10, 20]
    assert from_json.versions == ("1.0",)


def test_root_pages() -> None:
    entries = [IndexEntry("alpha", 3), IndexEntry("beta-two", 9)]
    from_json = parse_root_page(index_json(entries, 10), JSON, "https://up.example/simple/")
    assert dict(from_json.projects) == {"alpha": 3, "beta-two": 9}
    assert from_json.serial == 10
    from_html = parse_root_page(index_html(entries, 10), "text/html", "https://up.example/simple/")
    assert dict(from_html.projects) == {"alpha": None, "beta-two": None}
    assert from_html.serial == 10
    plain = b'<html><body><a href="/simple/Foo.Bar/">Foo.Bar</a><a href="baz/"></a></body></html>'
    root = parse_root_page(plain, "text/html", "https://up.example/simple/", header_serial=4)
    assert dict(root.projects) == {"foo-bar": None, "baz": None}
    assert root.serial == 4
    with pytest.raises(InvalidUpstreamPage, match="'projects' is not a list"):
        parse_root_page(b'{"meta": {}}', JSON, "https://up.example/simple/")
