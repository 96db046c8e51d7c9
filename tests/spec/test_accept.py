import pytest

from tilsit.spec.accept import NotAcceptable, negotiate
from tilsit.spec.simple import HTML, JSON, V1_HTML

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, HTML),
        ("", HTML),
        ("*/*", HTML),
        ("text/html", HTML),
        (PIP, JSON),  # pip and pdm (unearth)
        (UV, JSON),
        ("text/html, application/vnd.pypi.simple.v1+json;q=0.5", HTML),
        ("application/vnd.pypi.simple.v1+html", V1_HTML),
        ("application/vnd.pypi.simple.v1+json;q=0, text/html", HTML),
        (
            "application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html;q=0.5",
            JSON,
        ),
        ("text/*", HTML),
        ("application/*", JSON),
        ("application/json, */*;q=0.1", HTML),
        ("TEXT/HTML", HTML),
        ("application/vnd.pypi.simple.v1+json; q=bogus, text/html;q=0.1", HTML),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    "accept",
    ["application/json", "application/vnd.pypi.simple.v2+json", "text/html;q=0", "image/png"],
)
def test_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        negotiate(accept)
