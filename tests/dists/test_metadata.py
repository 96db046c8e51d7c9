"""Core metadata validation: the spec (through packaging) plus PyPI's upload rules."""

from __future__ import annotations

import pytest

from tilsit.dists import InvalidCoreMetadata
from tilsit.dists.metadata import parse_metadata


def meta(*lines: str, version: str = "2.1", name: str = "demo", body: str = "") -> bytes:
    head = [f"Metadata-Version: {version}", f"Name: {name}", "Version: 1.0", *lines]
    return ("\n".join(head) + "\n\n" + body).encode()


VALID = {
    "1.0 minimal": meta(version="1.0"),
    "1.1 with a classifier": meta("Classifier: Programming Language :: Python :: 3", version="1.1"),
    "1.2 with requirements": meta(
        "Requires-Python: >=3.9", "Requires-Dist: attrs (>=22)", version="1.2"
    ),
    "2.1 with a body description": meta(
        "Description-Content-Type: text/markdown", "Provides-Extra: cli", body="# Demo\n"
    ),
    "2.2 with dynamic fields": meta("Dynamic: Requires-Dist", version="2.2"),
    "2.3": meta("Summary: A demo", version="2.3"),
    "2.4 with a license expression": meta(
        "License-Expression: MIT", "License-File: LICENSE", version="2.4"
    ),
    "2.5 with import names": meta("Import-Name: demo", version="2.5"),
    "requirements with extras and markers": meta(
        "Requires-Dist: requests[socks]>=2; python_version >= '3.9'",
        "Requires-Dist: tomli; extra == 'cli'",
        "Provides-Extra: cli",
    ),
    "private classifier, which PyPI refuses and a private index is for": meta(
        "Classifier: Private :: Do Not Upload"
    ),
    "summary of 512 characters": meta("Summary: " + "s" * 512),
    "UTF-8 summary": meta("Summary: Café ☕"),
}


@pytest.mark.parametrize("data", VALID.values(), ids=VALID.keys())
def test_valid(data: bytes) -> None:
    assert parse_metadata(data, source="METADATA").metadata.name == "demo"


# (metadata, the fields with problems)
INVALID: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "Metadata-Version newer than PyPI's": (meta(version="2.6"), ("metadata-version",)),
    "unknown Metadata-Version": (meta(version="3.0"), ("metadata-version",)),
    "no Metadata-Version": (b"Name: demo\nVersion: 1.0\n\n", ("metadata-version",)),
    "no Name": (b"Metadata-Version: 2.1\nVersion: 1.0\n\n", ("name",)),
    "invalid Name": (meta(name="-demo-"), ("name",)),
    "Name twice": (meta("Name: other"), ("name",)),
    "local version": (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0+local\n\n",
        ("version",),
    ),
    "invalid version": (b"Metadata-Version: 2.1\nName: demo\nVersion: one\n\n", ("version",)),
    "summary over 512 characters": (meta("Summary: " + "s" * 513), ("summary",)),
    "summary over two lines": (meta("Summary: one\n two"), ("summary",)),
    "summary that is not UTF-8": (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: caf\xe9\n\n",
        ("summary",),
    ),
    "unknown classifier": (meta("Classifier: Programming Language :: Cobol 2.0"), ("classifier",)),
    "deprecated classifier": (meta("Classifier: Natural Language :: Ukranian"), ("classifier",)),
    "direct URL requirement": (
        meta("Requires-Dist: evil @ https://example.invalid/evil-1.0.whl"),
        ("requires-dist",),
    ),
    "invalid requirement": (meta("Requires-Dist: not a requirement!"), ("requires-dist",)),
    "invalid Requires-Python": (meta("Requires-Python: >=>3"), ("requires-python",)),
    "unknown field": (meta("Homepage-Url: https://example.invalid"), ("homepage-url",)),
}


@pytest.mark.parametrize(
    "data",
    [
        # Written by wheel and setuptools for years; PyPI lists 2.0 as supported.
        meta(version="2.0"),
        # setuptools wrote License-File under 2.1; installers read these wheels fine.
        meta("License-File: LICENSE", version="2.1"),
        meta("License-Expression: MIT", "License-File: LICENSE", version="2.3"),
    ],
    ids=["Metadata-Version 2.0", "License-File under 2.1", "2.4 fields under 2.3"],
)
def test_tolerated_like_real_wheels(data: bytes) -> None:
    assert parse_metadata(data, source="METADATA").metadata.name == "demo"


@pytest.mark.parametrize(("data", "fields"), INVALID.values(), ids=INVALID.keys())
def test_invalid(data: bytes, fields: tuple[str, ...]) -> None:
    with pytest.raises(InvalidCoreMetadata) as caught:
        parse_metadata(data, source="METADATA")
    assert caught.value.fields == fields
    assert str(caught.value).startswith("The core metadata in METADATA has 1 problem: ")


def test_every_problem_is_reported_at_once() -> None:
    data = (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0+dev\nSummary: a\n b\n"
        b"Classifier: Nope :: Nope\nRequires-Dist: x @ https://example.invalid/x.whl\n"
        b"Requires-Python: >>3\nColour: blue\n\n"
    )
    with pytest.raises(InvalidCoreMetadata) as caught:
        parse_metadata(data, source="pkg-1.0/PKG-INFO")
    error = caught.value
    assert set(error.fields) == {
        "colour",
        "summary",
        "requires-python",
        "version",
        "classifier",
        "requires-dist",
    }
    message = str(error)
    assert message.startswith("The core metadata in pkg-1.0/PKG-INFO has 6 problems: ")
    for words in ("'colour'", "single line", "1.0+dev", "'Nope :: Nope'", "direct URL", ">>3"):
        assert words in message


def test_deprecated_classifier_names_its_replacement() -> None:
    with pytest.raises(InvalidCoreMetadata, match="use 'Natural Language :: Ukrainian'"):
        parse_metadata(meta("Classifier: Natural Language :: Ukranian"), source="METADATA")


def test_raw_values_are_kept_as_written() -> None:
    parsed = parse_metadata(meta("Requires-Python:  >=3.9 ", name="Demo.Pkg"), source="METADATA")
    assert parsed.raw["name"] == "Demo.Pkg"
    assert parsed.raw["requires_python"] == ">=3.9 "
