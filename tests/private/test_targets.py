"""What a read path names, for the gate's per-project decision (tilsit.web.gate)."""

from __future__ import annotations

import pytest

from tilsit.web.gate import ReadTarget, original_path, read_target

SHA = "ab" * 32
WHEEL = "crown_jewels-1.0-py3-none-any.whl"
WHOLE = ReadTarget()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/sec/simple/", WHOLE),
        ("/sec/simple", WHOLE),
        (f"/sec/simple/{SHA}.index.html", WHOLE),
        ("/sec/simple/crown-jewels/", ReadTarget(project="crown-jewels")),
        ("/sec/simple/Crown_Jewels", ReadTarget(project="crown-jewels")),
        (f"/sec/simple/crown-jewels/{SHA}.index.v1.json", ReadTarget(project="crown-jewels")),
        ("/sec/pypi/crown-jewels/json", ReadTarget(project="crown-jewels")),
        ("/sec/pypi/Crown.Jewels/1.0/json", ReadTarget(project="crown-jewels")),
        ("/sec/legacy/+simple/crown-jewels/", ReadTarget(project="crown-jewels")),
        ("/sec/legacy/+simple/", WHOLE),
        (f"/sec/packages/ab/cd/{SHA[4:]}/{WHEEL}", ReadTarget(filename=WHEEL)),
        (f"/sec/packages/ab/cd/{SHA[4:]}/{WHEEL}.metadata", ReadTarget(filename=WHEEL)),
        (f"/sec/packages/ab/cd/{SHA[4:]}/{SHA}.{WHEEL}", ReadTarget(filename=f"{SHA}.{WHEEL}")),
        ("/sec/packages/ab/cd/x", WHOLE),
        ("/sec/tuf/timestamp.json", WHOLE),
        ("/sec/mirror-status.json", WHOLE),
        # The default index's root paths (the gate is told which index they are).
        ("/simple/crown-jewels/", ReadTarget(project="crown-jewels")),
        ("/pypi/crown-jewels/json", ReadTarget(project="crown-jewels")),
        ("/simple/", WHOLE),
        # Another index's path, and paths no route resolves: the whole index's.
        ("/other/simple/crown-jewels/", WHOLE),
        ("/sec/simple/mine/../crown-jewels/", WHOLE),
        ("/sec/simple/./crown-jewels/", WHOLE),
    ],
)
def test_read_target(path: str, expected: ReadTarget) -> None:
    assert read_target(path, "sec") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/sec/simple/mine/", "/sec/simple/mine/"),
        ("/sec/simple/mine/?format=json", "/sec/simple/mine/"),
        ("/sec/simple/mine/../other/", "/sec/simple/other/"),
        ("/sec/simple/mine/%2e%2e/other/", "/sec/simple/other/"),
        ("/sec/simple/mine/%2E%2E%2Fother/", "/sec/simple/other/"),
        ("/sec//simple///mine/./", "/sec/simple/mine/"),
        ("/sec/simple/mine/..", "/sec/simple/"),
        ("/sec/simple/%6Dine/", "/sec/simple/mine/"),
        ("/../sec/simple/mine/", None),  # above the root: nginx refuses it
        ("/sec/simple/%ff/", None),  # not UTF-8
        ("sec/simple/mine/", None),
        ("", None),
        (None, None),
    ],
)
def test_original_path_is_resolved_as_nginx_resolves_it(
    raw: str | None, expected: str | None
) -> None:
    assert original_path(raw) == expected
