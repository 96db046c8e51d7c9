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
