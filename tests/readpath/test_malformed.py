"""Malformed requests on the read path: 400 or 404 (416 for a Range), as nginx answers,
never a 500 with a traceback or a dropped connection.

Sent over raw sockets, byte for byte, since an HTTP client would clean the path
(resolve ``..``, re-encode a NUL). Each row runs against a live ``tilsit serve``
and against nginx over the same tree (``target``): both must answer within the
row's statuses. The same table runs against the in-process app in
tests/web/test_malformed.py.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.readpath.conftest import Corpus, Target

WHEEL = "foo_bar-1.0-py3-none-any.whl"
DIGITS = "1" * 5000  # past int()'s 4300-digit limit
LONG = "a" * 300  # no file name is this long
# A hashed page name (64 hex + "."), so the hashed-page route reads it.
HASHED = "0" * 64 + ".index.html"

# (path, extra headers, the statuses allowed); "{file}" is the wheel's URL path.
# 400 and 404 both stand for "refused, cleanly": nginx resolves some dot segments
# that tilsit refuses, and each may pick either for a name that cannot exist.
REFUSED = frozenset((400, 404))
MALFORMED: list[tuple[str, str, frozenset[int]]] = [
    ("/simple/foo-bar%00/", "", frozenset((400,))),
    ("/simple/%00/", "", frozenset((400,))),
    ("/simple/foo-bar%0d%0a/", "", REFUSED),
    ("/simple/foo-bar%0aX-Injected:%201/", "", REFUSED),
    (f"/simple/{LONG}/", "", frozenset((404,))),
    (f"/simple/{'a' * 5000}/", "", REFUSED),
    ("/simple/%ff%fe/", "", REFUSED),
    ("/simple/%c3%28/", "", REFUSED),  # invalid UTF-8
    ("/pypi/foo-bar%00/json", "", frozenset((400,))),
    ("/pypi/foo-bar/1.0%00/json", "", frozenset((400,))),
    (f"/pypi/foo-bar/{LONG}/json", "", REFUSED),
    ("/pypi/%ff/json", "", REFUSED),
    ("/packages/aa/bb/cc/x%00y", "", frozenset((400,))),
    (f"/packages/aa/bb/{'c' * 60}/{LONG}", "", frozenset((404,))),
    ("/packages/aa/bb/cc/%ff%fe", "", REFUSED),
    ("/packages/../main/simple/index.html", "", REFUSED | {301}),  # nginx resolves it
    ("/packages/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "", REFUSED),
    ("/main/packages/aa/bb/cc/%00", "", frozenset((400,))),
    (f"/{LONG}/packages/aa/bb/cc/d", "", REFUSED),
    (f"/{LONG}/simple/", "", REFUSED),
    ("/main/tuf/%00.json", "", frozenset((400,))),
    (f"/main/tuf/{LONG}.json", "", REFUSED),
    ("/m%00/mirror-status.json", "", frozenset((400,))),
    (f"/{LONG}/mirror-status.json", "", REFUSED),
    ("/../mirror-status.json", "", REFUSED),
    (f"/main/simple/{HASHED}%00", "", frozenset((400,))),
    (f"/main/simple/foo-bar/{HASHED}%0d%0a", "", REFUSED),
    ("/simple/../../../etc/passwd", "", REFUSED),
    ("{file}", f"Range: bytes={DIGITS}-\r\n", frozenset((416,))),
    ("{file}", f"Range: bytes=0-{DIGITS}\r\n", frozenset((416,))),
    ("{file}", f"Range: bytes=-{DIGITS}\r\n", frozenset((416,))),
    ("{file}.metadata", f"Range: bytes={DIGITS}-\r\n", frozenset((200, 206, 416))),
]


def raw_get(url: str, path: str, headers: str = "") -> tuple[int | None, bytes]:
    """(status, head) of one GET sent byte for byte; status None if the connection dropped."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n{headers}\r\n"
        )
        sock.sendall(request.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    if not head.startswith(b"HTTP/1."):
        return None, head
    return int(head.split(b" ", 2)[1]), head


@pytest.mark.parametrize(("path", "headers", "allowed"), MALFORMED)
def test_malformed_request_is_refused_cleanly(
    target: Target, corpus: Corpus, path: str, headers: str, allowed: frozenset[int]
) -> None:
    path = path.replace("{file}", corpus.path(WHEEL))
    status, head = raw_get(target.url, path, headers)
    assert status is not None, f"{target.name} dropped the connection for {path[:80]!r}"
    assert status in allowed, (target.name, path[:80], head[:200])
    assert b"x-injected" not in head.lower()


def test_the_server_still_serves_after_the_table(target: Target, corpus: Corpus) -> None:
    for path, headers, _allowed in MALFORMED:
        raw_get(target.url, path.replace("{file}", corpus.path(WHEEL)), headers)
    assert raw_get(target.url, "/simple/foo-bar/")[0] == 200
    assert raw_get(target.url, corpus.path(WHEEL))[0] == 200
