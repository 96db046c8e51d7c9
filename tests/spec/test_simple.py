import json
from datetime import UTC, datetime

from tilsit.spec.simple import (
    IndexEntry,
    ProjectPage,
    SimpleFile,
    index_html,
    index_json,
    project_html,
    project_json,
)

WHEN = datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=UTC)
WHEEL = SimpleFile(
    filename="foo-1.0-py3-none-any.whl",
    url="/packages/aa/bb/cc/foo-1.0-py3-none-any.whl",
    sha256="a" * 64,
    size=1234,
    upload_time=WHEN,
    requires_python=">=3.8,<4",
    metadata_sha256="b" * 64,
)
SDIST = SimpleFile(
    filename="foo-1.0.tar.gz",
    url="/packages/dd/ee/ff/foo-1.0.tar.gz",
    sha256="c" * 64,
    size=99,
    upload_time=WHEN,
    yanked='broken "build"',
)
PAGE = ProjectPage(name="foo", serial=42, versions=["1.0"], files=[WHEEL, SDIST])


def test_project_json_fields() -> None:
    doc = json.loads(project_json(PAGE))
    assert doc["meta"] == {"api-version": "1.4", "_last-serial": 42}
    assert doc["name"] == "foo"
    assert doc["versions"] == ["1.0"]
    assert doc["project-status"] == {"status": "active"}
    wheel, sdist = doc["files"]
    assert wheel == {
        "filename": "foo-1.0-py3-none-any.whl",
        "url": "/packages/aa/bb/cc/foo-1.0-py3-none-any.whl",
        "hashes": {"sha256": "a" * 64},
        "requires-python": ">=3.8,<4",
        "size": 1234,
        "upload-time": "2024-05-01T12:30:01.123456Z",
        "yanked": False,
        "core-metadata": {"sha256": "b" * 64},
        "dist-info-metadata": {"sha256": "b" * 64},
    }
    assert sdist["yanked"] == 'broken "build"'
    assert sdist["core-metadata"] is False
    assert sdist["requires-python"] is None


def test_yanked_without_reason_is_true() -> None:
    page = ProjectPage(
        "foo", 1, ["1.0"], [SimpleFile("foo-1.0.tar.gz", "/x", "c" * 64, 1, WHEN, yanked="")]
    )
    assert json.loads(project_json(page))["files"][0]["yanked"] is True
    assert 'data-yanked=""' in project_html(page).decode()


def test_project_html_attributes() -> None:
    html = project_html(PAGE).decode()
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert f'href="/packages/aa/bb/cc/foo-1.0-py3-none-any.whl#sha256={"a" * 64}"' in html
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in html
    assert f'data-core-metadata="sha256={"b" * 64}"' in html
    assert f'data-dist-info-metadata="sha256={"b" * 64}"' in html
    assert 'data-yanked="broken &quot;build&quot;"' in html
    assert 'data-upload-time="2024-05-01T12:30:01.123456Z"' in html
    assert html.rstrip().endswith("<!--SERIAL 42-->")
    sdist_line = next(line for line in html.splitlines() if "foo-1.0.tar.gz<" in line)
    # Never ="false": the attributes are absent when there is no metadata file.
    assert "metadata" not in sdist_line
    assert "requires-python" not in sdist_line


def test_index_documents() -> None:
    entries = [IndexEntry("bar", 3), IndexEntry("foo", 42)]
    doc = json.loads(index_json(entries, 50))
    assert doc["meta"]["_last-serial"] == 50
    assert doc["projects"] == [
        {"name": "bar", "_last-serial": 3},
        {"name": "foo", "_last-serial": 42},
    ]
    html = index_html(entries, 50).decode()
    assert '<a href="bar/">bar</a>' in html and '<a href="foo/">foo</a>' in html


def test_rendering_is_deterministic() -> None:
    assert project_json(PAGE) == project_json(PAGE)
    assert project_html(PAGE) == project_html(PAGE)
