import re

import pytest
from packaging.version import Version

from tilsit.spec.filenames import InvalidDistFilename, parse_dist_filename


@pytest.mark.parametrize(
    ("filename", "name", "version", "packagetype", "python_version"),
    [
        ("foo-1.0-py3-none-any.whl", "foo", "1.0", "bdist_wheel", "py3"),
        ("foo_bar-2.0rc1-py2.py3-none-any.whl", "foo-bar", "2.0rc1", "bdist_wheel", "py2.py3"),
        (
            "Foo_Bar-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "foo-bar",
            "1.0",
            "bdist_wheel",
            "cp311",
        ),
        ("foo_bar-1.0.tar.gz", "foo-bar", "1.0", "sdist", "source"),
        ("zope_interface-6.0.post1.tar.gz", "zope-interface", "6.0.post1", "sdist", "source"),
    ],
)
def test_valid(
    filename: str, name: str, version: str, packagetype: str, python_version: str
) -> None:
    parsed = parse_dist_filename(filename)
    assert (parsed.name, parsed.version, parsed.packagetype) == (
        name,
        Version(version),
        packagetype,
    )
    assert parsed.python_version == python_version


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0.zip",  # legacy sdist formats are not accepted
        "foo-1.0.tar.bz2",
        "foo-1.0.egg",
        "foo-1.0.exe",
        "Foo-Bar-1.0.tar.gz",  # PEP 625: the name must be normalised with underscores
        "foo.bar-1.0.tar.gz",
        "foo-bar-1.0.tar.gz",
        "foo-1.0-py3-none.whl",  # too few wheel tags
        "foo-1.0-py3-none-any-extra-x.whl",
        "foo-notaversion-py3-none-any.whl",
        "../foo-1.0.tar.gz",
        "dir/foo-1.0-py3-none-any.whl",
        ".foo-1.0.tar.gz",
    ],
)
def test_invalid(filename: str) -> None:
    with pytest.raises(InvalidDistFilename):
        parse_dist_filename(filename)


@pytest.mark.parametrize(
    ("project", "filename", "packagetype", "version"),
    [
        ("foo", "foo-1.0-py3-none-any.whl", "bdist_wheel", "1.0"),
        ("foo-bar", "foo_bar-1.0.tar.gz", "sdist", "1.0"),
        ("foo-bar", "Foo-Bar-1.0.tar.gz", "sdist", "1.0"),
        ("foo-bar", "foo.bar-2.0b1.zip", "sdist", "2.0b1"),
        ("foo", "foo-0.1.tar.bz2", "sdist", "0.1"),
        ("foo", "foo-1.0-py2.7.egg", "bdist_egg", "1.0"),
        ("foo", "foo-1.0.win32.exe", "bdist_wininst", "1.0.win32"),
        ("pytz", "pytz-2004d.tar.gz", "sdist", "2004d"),
    ],
)
def test_classify_mirrored(project: str, filename: str, packagetype: str, version: str) -> None:
    from tilsit.spec.filenames import classify_mirrored

    assert classify_mirrored(project, filename) == (packagetype, version)


# -- issue 9, items 8 and 17: the tree holds every filename it takes -----------------


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        # KELVIN SIGN: packaging folds the name to "fook", so two spellings were one project.
        ("foo\u212a-1.0-py3-none-any.whl", "U+212A KELVIN SIGN"),
        ("foo\u212a-1.0.tar.gz", "U+212A KELVIN SIGN"),
        ("caf\u00e9-1.0-py3-none-any.whl", "U+00E9"),
        ("foo-1.0-py3-none-any.whl\x00", "U+0000"),
        ("foo-1.0%2Fx-py3-none-any.whl", "'%'"),
        ("foo__bar-1.0-py3-none-any.whl", "invalid wheel filename"),
        ("_foo-1.0-py3-none-any.whl", "is not a project name"),
        ("foo-1.0-py3-none-" + "x" * 260 + ".whl", "at most 180"),
        ("", "empty"),
    ],
)
def test_refused_with_the_reason(filename: str, reason: str) -> None:
    with pytest.raises(InvalidDistFilename, match=re.escape(reason)):
        parse_dist_filename(filename)


def test_the_bound_leaves_room_for_the_hashed_metadata_link() -> None:
    from tilsit.spec.filenames import MAX_FILENAME_LENGTH

    longest = "a" * (MAX_FILENAME_LENGTH - len("-1.0.tar.gz")) + "-1.0.tar.gz"
    assert len(longest) == MAX_FILENAME_LENGTH
    assert parse_dist_filename(longest).name == "a" * (MAX_FILENAME_LENGTH - 11)
    # What the tree makes of it: one file name, within NAME_MAX.
    assert len(f"{'0' * 64}.{longest}.metadata".encode()) <= 255
    with pytest.raises(InvalidDistFilename, match="181 characters long"):
        parse_dist_filename("a" + longest)


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0-py3-none-any.whl",
        "Foo.Bar-1.0.tar.gz",
        "foo-1.0.zip",
        "foo-1.0-py2.7.egg",
        "pytz-2004d.tar.bz2",
        "foo-1!2.0+local.tar.gz",
    ],
)
def test_mirrored_filenames_taken(filename: str) -> None:
    from tilsit.spec.filenames import validate_filename

    assert validate_filename(filename) == filename


@pytest.mark.parametrize(
    "filename",
    [
        "../../x.whl",
        "/etc/x.whl",
        "..",
        ".hidden-1.0.tar.gz",
        "README.txt",
        "foo.zip",
        "foo-1.0 (1).zip",
        "foo\u212a-1.0.zip",
        "foo-1.0-py3-none-any.whl.metadata",
        "x" * 266 + "-1.0.zip",
    ],
)
def test_mirrored_filenames_refused(filename: str) -> None:
    from tilsit.spec.filenames import validate_filename

    with pytest.raises(InvalidDistFilename):
        validate_filename(filename)
