"""The nginx config's Perl helpers against the Python they mirror, without nginx.

Each table runs through one ``perl -w`` process (helpers loaded, one answer per
input line), so thousands of cases cost a few milliseconds. Perl is in every
Debian image; Digest::SHA and Time::HiRes come with the Perl that
libnginx-mod-http-perl pulls in.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from packaging.version import InvalidVersion, Version

from tests.conftest import need
from tilsit.nginx.config import perl_parts
from tilsit.spec.accept import NotAcceptable, negotiate
from tilsit.spec.names import normalize
from tilsit.spec.simple import HTML, JSON, V1_HTML
from tilsit.web.treefiles import TreeFiles

SHORT = {JSON: "json", V1_HTML: "v1html", HTML: "html"}

_DRIVER = """
package main;
$| = 1;
my %run = (
    accept => sub { TilsitNginx::negotiate($_[0]) },
    format => sub { TilsitNginx::query_format($_[0]) // "NONE" },
    name => sub { TilsitNginx::normalize_name($_[0]) },
    version => sub { TilsitNginx::canonical_version($_[0]) // "INVALID" },
    legacy => sub { TilsitNginx::canonical_legacy($_[0]) },
    page => sub { join " ", TilsitNginx::page_info($_[0]) },
    etag => sub { my ($h, $e) = split / => /, $_[0], 2; TilsitNginx::etag_matches($h, $e) },
);
while (my $line = <STDIN>) {
    chomp $line;
    my ($kind, $input) = split /\\t/, $line, 2;
    print $run{$kind}->($input // ""), "\\n";
}
"""


def perl(kind: str, inputs: Iterable[str]) -> list[str]:
    need(shutil.which("perl") is not None, "perl (Debian: perl-base)")
    inputs = list(inputs)
    assert all("\t" not in i and "\n" not in i for i in inputs)
    source = "".join(perl_parts().values()) + _DRIVER
    result = subprocess.run(
        ["perl", "-w", "-e", "use strict;" + source],
        input="".join(f"{kind}\t{i}\n" for i in inputs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no warnings either
    return result.stdout.split("\n")[:-1]


def python_media(accept: str) -> str:
    try:
        return SHORT[negotiate(accept)]
    except NotAcceptable:
        return ""


PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"

RANGES = [
    "application/vnd.pypi.simple.v1+json",
    "application/vnd.pypi.simple.v1+html",
    "text/html",
    "text/*",
    "application/*",
    "*/*",
    "image/png",
    "application/json",
    "APPLICATION/VND.PYPI.SIMPLE.V1+JSON",
    "",
]
QUALITIES = ["", ";q=1", "; q=0.5", ";Q=0.1", ";q=0", "; q = 0.01", ";q=abc", ";q=1.5"]
QUALITIES += [";q=-1", ";q=.5", ";q=0.50", ";q=1e-1", ";level=1;q=0.2", ";q"]


def accept_headers() -> list[str]:
    singles = [r + q for r in RANGES for q in QUALITIES]
    headers = [PIP, UV, POETRY, "", " ", ",", ", ,", "*/*;q=0", "*/*, */*;q=0"]
    headers += singles
    headers += [f"{a}, {b}" for a, b in itertools.product(singles, repeat=2)]
    # Three-range lists as real clients send them, in every order.
    parts = ["application/vnd.pypi.simple.v1+json;q=0.3", "text/html;q=0.3", "*/*;q=0.2"]
    headers += [",".join(p) for p in itertools.permutations(parts)]
    return headers


def test_negotiation_matches_tilsit() -> None:
    headers = accept_headers()
    assert len(headers) > 10_000
    got = perl("accept", headers)
    mismatches = [
        (h, p, python_media(h)) for h, p in zip(headers, got, strict=True) if p != python_media(h)
    ]
    assert mismatches == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", None),
        ("format=json", "json"),
        ("format=", None),
        ("format", None),
        ("x=1&format=html", "html"),
        ("format=&format=json", "json"),
        ("format=json&format=html", "json"),
        ("form%61t=json", "json"),
        ("format=application/vnd.pypi.simple.v1%2Bjson", JSON),
        ("format=application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1 json"),
        ("format=text%2fhtml", HTML),
        ("a=b;format=json", None),
    ],
)
def test_query_format_matches_parse_qs(query: str, expected: str | None) -> None:
    python = parse_qs(query).get("format", [None])[0]
    assert python == expected
    assert perl("format", [query]) == [expected or "NONE"]


NAMES = ["foo", "Foo", "FOO.bar", "foo__bar", "foo-_.-bar", "a.b.c", "Django", "zope.interface"]
NAMES += ["-x-", "x..", "a1_B2", "pip", "ruamel.yaml.clib", "A", "0"]


def test_name_normalisation_matches_tilsit() -> None:
    assert perl("name", NAMES) == [normalize(n) for n in NAMES]


VERSIONS = [
    "1.0",
    "1.0.0",
    "01.02",
    "v1.0",
    "V1.0",
    "1!2.0",
    "0!1.0",
    "00!1.0",
    "1.0a1",
    "1.0-alpha.1",
    "1.0ALPHA1",
    "1.0b",
    "1.0beta2",
    "1.0c3",
    "1.0pre4",
    "1.0preview",
    "1.0rc1",
    "1.0-rc.01",
    "1.0_RC_1",
    "2.0-RC1",
    "1.0.post1",
    "1.0-1",
    "1.0post",
    "1.0-r2",
    "1.0rev3",
    "1.0.dev0",
    "1.0dev",
    "1.0-dev-7",
    "1.0a1.post2.dev3",
    "1.0+local",
    "1.0+Ubuntu-1",
    "1.0+abc.007",
    "1.0+abc_def-1",
    " 1.0 ",
    "1.0a1-1",
    "1.0.post1.dev1+x.y",
    # invalid: kept as written
    "1.0+",
    "latest",
    "1.0-",
    "1..0",
    "1.0.dev1a",
    "",
    "1.0+a..b",
    "1.0a1a",
]


def python_version(v: str) -> str:
    try:
        return str(Version(v))
    except InvalidVersion:
        return "INVALID"


def test_version_normalisation_matches_packaging() -> None:
    assert perl("version", VERSIONS) == [python_version(v) for v in VERSIONS]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Foo_Bar", "foo-bar"),
        ("foo", "foo"),
        ("Foo/1.0-RC1", "foo/1.0rc1"),
        ("foo/1.0", "foo/1.0"),
        ("foo/latest", "foo/latest"),
    ],
)
def test_legacy_path(path: str, expected: str) -> None:
    assert perl("legacy", [path]) == [expected]


PAGES = [
    b"<html>\n</html>\n<!--SERIAL 42-->\n",
    b'{"meta":{"api-version":"1.4","_last-serial":7},"name":"x"}',
    b'{"info": {"description": "' + b"x" * 5000 + b'"}, "last_serial": 19, "urls": []}',
    b"Metadata-Version: 2.1\nName: x\n\n",
    b"",
    b"<!--SERIAL 3-->" + b" " * 100,
]


def test_page_etag_and_serial_match_treefiles(tmp_path: Path) -> None:
    files = TreeFiles(tmp_path, 0)
    for i, data in enumerate(PAGES):
        (tmp_path / f"p{i}").write_bytes(data)
    paths = [str(tmp_path / f"p{i}") for i in range(len(PAGES))]
    expected = []
    for i in range(len(PAGES)):
        entry = files.page(f"p{i}")
        assert entry is not None
        expected.append(f"{entry.etag} {'' if entry.serial is None else entry.serial}")
    assert perl("page", [*paths, str(tmp_path / "missing"), str(tmp_path)]) == [
        *expected,
        " ",
        " ",
    ]


def test_page_cache_sees_a_replaced_page(tmp_path: Path) -> None:
    """The same path, replaced by rename as the tree writer does, within one process."""
    page = tmp_path / "index.html"
    page.write_bytes(b"<!--SERIAL 1-->\n")
    fresh = tmp_path / "new"
    fresh.write_bytes(b"<!--SERIAL 2-->\n")  # same size, same second
    need(shutil.which("perl") is not None, "perl (Debian: perl-base)")
    source = "use strict;" + perl_parts()["accept"] + perl_parts()["pages"]
    source += (
        f'print join(" ", TilsitNginx::page_info("{page}")), "\\n";'
        f'rename("{fresh}", "{page}") or die;'
        f'print join(" ", TilsitNginx::page_info("{page}")), "\\n";'
    )
    out = subprocess.run(
        ["perl", "-w", "-e", source], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split("\n")
    assert out[0].endswith(" 1") and out[1].endswith(" 2")
    assert out[0].split()[0] != out[1].split()[0]


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        (' "x" ,W/"abc" ', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
        ("", False),
    ],
)
def test_etag_matching(header: str, matches: bool) -> None:
    assert perl("etag", [f'{header} => "abc"']) == ["1" if matches else "0"]
