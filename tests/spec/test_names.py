import pytest

from tilsit.spec.names import (
    MAX_NAME_LENGTH,
    MAX_VERSION_LENGTH,
    InvalidProjectName,
    InvalidVersionText,
    confusable_key,
    is_valid_name,
    normalize,
    validate_name,
    validate_version,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # PEP 503's own examples and the edge cases around them.
        ("friendly-bard", "friendly-bard"),
        ("Friendly-Bard", "friendly-bard"),
        ("FRIENDLY-BARD", "friendly-bard"),
        ("friendly.bard", "friendly-bard"),
        ("friendly_bard", "friendly-bard"),
        ("friendly--bard", "friendly-bard"),
        ("FrIeNdLy-._.-bArD", "friendly-bard"),
        ("a", "a"),
    ],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["", "-a", "a-", ".a", "a b", "ä", "a/b", "a..b!"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidProjectName):
        validate_name(name)


@pytest.mark.parametrize("name", ["a", "A1", "a.b-c_d", "0", "zope.interface"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("left", "right", "collide"),
    [
        ("requests", "reqeusts", False),
        ("requests", "request-s", True),
        ("pillow", "piIlow", True),  # capital I looks like l
        ("pillow", "pi1low", True),
        ("foo", "f00", True),
        ("django", "djang0", True),
        ("numpy", "num.py", True),
        ("numpy", "numpyy", False),
    ],
)
def test_confusable_key(left: str, right: str, collide: bool) -> None:
    assert (confusable_key(left) == confusable_key(right)) is collide


@pytest.mark.parametrize(
    "name",
    [
        "foo\n",  # "$" in a match() would let a trailing newline through
        "\u212a",  # KELVIN SIGN: IGNORECASE alone matches it with [A-Z]
        "\u017fetuptools",  # LATIN SMALL LETTER LONG S
        "a" * (MAX_NAME_LENGTH + 1),
        "a" * 240,
    ],
)
def test_names_the_tree_cannot_hold_are_invalid(name: str) -> None:
    with pytest.raises(InvalidProjectName):
        validate_name(name)
    assert not is_valid_name(name)


def test_the_longest_name_is_valid() -> None:
    assert validate_name("a" * MAX_NAME_LENGTH) == "a" * MAX_NAME_LENGTH
    assert is_valid_name("a" * MAX_NAME_LENGTH)


@pytest.mark.parametrize(
    "version", ["1" * (MAX_VERSION_LENGTH + 1), "", "..", "1/2", "1\n", "1\x00", "1\\2"]
)
def test_versions_the_tree_cannot_hold(version: str) -> None:
    with pytest.raises(InvalidVersionText):
        validate_version(version)


@pytest.mark.parametrize("version", ["1.0", "2024.1.1.post3.dev4", "1" * MAX_VERSION_LENGTH])
def test_versions_the_tree_holds(version: str) -> None:
    assert validate_version(version) == version
