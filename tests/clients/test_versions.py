"""One version, one release: ``3.0``, ``3.0.0`` and ``03.0`` are one version (PEP 440).

A file whose version equals an existing release's joins that release, under the
spelling the release was first seen with; a second file with the same tags (or a
second sdist) under another spelling is refused, naming the file it would duplicate.
Uploaded with the real twine and ``uv publish``.
"""

from __future__ import annotations

import json

import pytest

from tests.builders import Dist, make_sdist, make_wheel
from tests.clients.conftest import Served
from tests.clients.test_publish import PUBLISHERS, Release, assert_server_said, posts
from tests.clients.tools import Sandbox, describe

pytestmark = pytest.mark.clients


@pytest.mark.parametrize("tool", ["twine", "uv"])
def test_equal_versions_are_one_release(
    served: Served, sandbox: Sandbox, token: str, tool: str
) -> None:
    name = f"equal-{tool}"
    publish = PUBLISHERS[tool]

    def send(label: str, dist: Dist) -> tuple[int, str]:
        mark = served.mark()
        result = publish(sandbox, served, token, Release.write(sandbox.root, label, dist), False)
        statuses = posts(served.requests(mark))
        assert len(statuses) == 1, describe(result)
        assert (result.returncode == 0) == (statuses == [200]), describe(result)
        return statuses[0], describe(result)

    first = make_wheel(name, "3.0")
    assert send("first", first)[0] == 200

    # The same tags under an equal version, spelled other ways: refused, naming the file.
    # (uv skips a file whose name is not normalized, such as "03.0", without sending it.)
    spellings = ["3.0.0", "3"] + (["03.0"] if tool == "twine" else [])
    for label, version in enumerate(spellings):
        mark = served.mark()
        result = publish(
            sandbox,
            served,
            token,
            Release.write(sandbox.root, f"spelling{label}", make_wheel(name, version)),
            False,
        )
        assert result.returncode != 0, describe(result)
        assert posts(served.requests(mark)) == [400]
        assert_server_said(tool, result, f"'{first.filename}'")

    # Other tags, and the release's sdist, under "3.0.0": they join release "3.0".
    other_tags = make_wheel(name, "3.0.0", tag="py2-none-any")
    sdist = make_sdist(name, "3.0.0")
    assert send("other-tags", other_tags)[0] == 200
    assert send("sdist", sdist)[0] == 200
    # A second sdist, under the release's own spelling: the release has one.
    mark = served.mark()
    second = Release.write(sandbox.root, "sdist2", make_sdist(name, "3.0"))
    result = publish(sandbox, served, token, second, False)
    assert result.returncode != 0, describe(result)
    assert posts(served.requests(mark)) == [400]
    assert_server_said(tool, result, f"'{sdist.filename}'")

    assert served.files(name) == {
        first.filename: first.sha256,
        other_tags.filename: other_tags.sha256,
        sdist.filename: sdist.sha256,
    }
    page = served.page(name)
    assert page is not None and page["versions"] == ["3.0"]
    status, body = served.get(f"/pypi/{name}/json", accept="application/json")
    assert status == 200, body
    releases = json.loads(body)["releases"]
    assert list(releases) == ["3.0"]
    assert sorted(f["filename"] for f in releases["3.0"]) == sorted(
        [first.filename, other_tags.filename, sdist.filename]
    )
    # The per-version JSON answers for any spelling, by a redirect to the release's.
    for spelling in ("3.0", "3.0.0", "3", "03.0"):
        status, body = served.get(f"/pypi/{name}/{spelling}/json", accept="application/json")
        assert status == 200, (spelling, body)
        assert json.loads(body)["info"]["version"] == "3.0"
    assert served.get(f"/pypi/{name}/3.0.1/json", accept="application/json")[0] == 404
