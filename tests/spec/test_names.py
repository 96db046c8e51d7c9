import pytest

from tilsit.spec.names import InvalidProjectName, confusable_key, normalize, validate_name


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
