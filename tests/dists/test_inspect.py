"""inspect_distribution: the layout wheels and sdists must have, and what the index keeps."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from tests.builders import Dist, make_sdist, make_wheel
from tests.dists.rawtar import gz, member, tar
from tilsit.dists import (
    DistInfo,
    InvalidCoreMetadata,
    InvalidDistribution,
    InvalidLayout,
    InvalidWheelFile,
    Limits,
    MetadataMismatch,
    MetadataTooLarge,
    MissingMetadata,
    UnsafeArchive,
    UnsafeMember,
    inspect_distribution,
)
from tilsit.spec.filenames import parse_dist_filename

DEFAULT = Limits()


def inspect(tmp_path: Path, dist: Dist, limits: Limits = DEFAULT) -> DistInfo:
    return inspect_distribution(dist.write(tmp_path), parse_dist_filename(dist.filename), limits)


def rewrite_wheel(
    dist: Dist,
    *,
    drop: Callable[[str], bool] = lambda _name: False,
    add: dict[str, bytes] | None = None,
    rename: Callable[[str], str] = lambda name: name,
) -> Dist:
    """The wheel with members dropped, renamed or added, as a careless builder might write it."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(dist.data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            if not drop(info.filename):
                target.writestr(rename(info.filename), source.read(info))
        for name, data in (add or {}).items():
            target.writestr(name, data)
    return Dist(dist.filename, buffer.getvalue())


def rewrite_sdist(dist: Dist, *, rename: Callable[[str], str], filename: str = "") -> Dist:
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(dist.data)) as source,
        tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as target,
    ):
        for info in source.getmembers():
            data = source.extractfile(info)
            info.name = rename(info.name)
            target.addfile(info, data)
    return Dist(filename or dist.filename, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# What an accepted distribution yields.


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
def test_dist_info(tmp_path: Path, make: Callable[..., Dist]) -> None:
    dist = make("Demo.Pkg", "1.2.0", requires_python="  >=3.9 ", summary="A demo")
    info = inspect(tmp_path, dist)
    assert info.name == "Demo.Pkg"
    assert info.version == Version("1.2.0")
    assert info.requires_python == ">=3.9"
    assert info.summary == "A demo"
    assert info.metadata.name == "Demo.Pkg"
    assert info.metadata_bytes == stored_metadata(dist)


def stored_metadata(dist: Dist) -> bytes:
    """The METADATA or PKG-INFO bytes in ``dist``, read with the standard library."""
    if dist.filename.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(dist.data)) as wheel:
            return wheel.read("demo_pkg-1.2.0.dist-info/METADATA")
    with tarfile.open(fileobj=io.BytesIO(dist.data)) as sdist:
        pkg_info = sdist.extractfile("demo_pkg-1.2.0/PKG-INFO")
        assert pkg_info is not None
        return pkg_info.read()


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
def test_no_requires_python_or_summary(tmp_path: Path, make: Callable[..., Dist]) -> None:
    dist = make("demo", "1.0", metadata=b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n")
    info = inspect(tmp_path, dist)
    assert (info.requires_python, info.summary) == (None, None)


# ---------------------------------------------------------------------------------------------
# The filename and the metadata must agree.

AGREEING = {
    "name spelled differently, same normalised name": ("demo-pkg", "1.0", "Demo_Pkg", "1.0"),
    "version spelled differently, equal under PEP 440": ("demo", "1.0", "demo", "1.0.0"),
    "version with a pre-release in long form": ("demo", "1.0rc1", "demo", "1.0-rc.1"),
}
DISAGREEING = {
    "other name": ("demo", "1.0", "other", "1.0", "name"),
    "other version": ("demo", "1.0", "demo", "1.1", "version"),
}


def with_metadata(
    make: Callable[..., Dist], name: str, version: str, meta: tuple[str, str]
) -> Dist:
    text = f"Metadata-Version: 2.1\nName: {meta[0]}\nVersion: {meta[1]}\n\n"
    return make(name, version, metadata=text.encode())


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
@pytest.mark.parametrize("case", AGREEING.values(), ids=AGREEING.keys())
def test_filename_and_metadata_agree(
    tmp_path: Path, make: Callable[..., Dist], case: tuple[str, str, str, str]
) -> None:
    name, version, meta_name, meta_version = case
    info = inspect(tmp_path, with_metadata(make, name, version, (meta_name, meta_version)))
    assert info.name == meta_name


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
@pytest.mark.parametrize("case", DISAGREEING.values(), ids=DISAGREEING.keys())
def test_filename_and_metadata_disagree(
    tmp_path: Path, make: Callable[..., Dist], case: tuple[str, str, str, str, str]
) -> None:
    name, version, meta_name, meta_version, field = case
    with pytest.raises(MetadataMismatch) as caught:
        inspect(tmp_path, with_metadata(make, name, version, (meta_name, meta_version)))
    assert caught.value.field == field
    assert f"gives the {field} as" in str(caught.value)


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
def test_invalid_metadata_names_its_file(tmp_path: Path, make: Callable[..., Dist]) -> None:
    dist = make("demo", "1.0", summary="one\n two", extra=[("Classifier", "Nope :: Nope")])
    with pytest.raises(InvalidCoreMetadata) as caught:
        inspect(tmp_path, dist)
    assert caught.value.fields == ("summary", "classifier")
    source = "demo-1.0.dist-info/METADATA" if make is make_wheel else "demo-1.0/PKG-INFO"
    assert f"The core metadata in {source} has 2 problems" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Wheel layout.

WHEEL = make_wheel("demo", "1.0")
WHEEL_CASES: dict[str, tuple[Dist, type[InvalidDistribution], str]] = {
    "no .dist-info": (
        rewrite_wheel(WHEEL, drop=lambda name: ".dist-info/" in name),
        MissingMetadata,
        "no .dist-info directory; its metadata belongs in demo-1.0.dist-info/METADATA",
    ),
    "two .dist-info directories": (
        rewrite_wheel(WHEEL, add={"other-1.0.dist-info/METADATA": b""}),
        InvalidLayout,
        "2 .dist-info directories",
    ),
    ".dist-info of another project": (
        rewrite_wheel(WHEEL, rename=lambda name: name.replace("demo-1.0", "other-1.0")),
        InvalidLayout,
        "'other-1.0.dist-info', which is not for demo 1.0",
    ),
    ".dist-info of another version": (
        rewrite_wheel(WHEEL, rename=lambda name: name.replace("demo-1.0", "demo-2.0")),
        InvalidLayout,
        "'demo-2.0.dist-info', which is not for demo 1.0",
    ),
    ".dist-info without a version": (
        rewrite_wheel(WHEEL, rename=lambda name: name.replace("demo-1.0", "demo")),
        InvalidLayout,
        "'demo.dist-info'",
    ),
    "no METADATA": (
        rewrite_wheel(WHEEL, drop=lambda name: name.endswith("/METADATA")),
        MissingMetadata,
        "no demo-1.0.dist-info/METADATA",
    ),
    "METADATA only in a nested .dist-info": (
        rewrite_wheel(
            WHEEL,
            rename=lambda name: "demo/" + name if name.endswith("/METADATA") else name,
        ),
        MissingMetadata,
        "no demo-1.0.dist-info/METADATA",
    ),
    "no WHEEL": (
        rewrite_wheel(WHEEL, drop=lambda name: name.endswith("/WHEEL")),
        MissingMetadata,
        "no demo-1.0.dist-info/WHEEL",
    ),
    "WHEEL of version 2": (
        rewrite_wheel(
            WHEEL,
            drop=lambda name: name.endswith("/WHEEL"),
            add={"demo-1.0.dist-info/WHEEL": b"Wheel-Version: 2.0\nTag: py3-none-any\n"},
        ),
        InvalidWheelFile,
        "Wheel-Version '2.0'",
    ),
    "WHEEL without Wheel-Version": (
        rewrite_wheel(
            WHEEL,
            drop=lambda name: name.endswith("/WHEEL"),
            add={"demo-1.0.dist-info/WHEEL": b"Tag: py3-none-any\n"},
        ),
        InvalidWheelFile,
        "exactly one Wheel-Version",
    ),
    "WHEEL that is not UTF-8": (
        rewrite_wheel(
            WHEEL,
            drop=lambda name: name.endswith("/WHEEL"),
            add={"demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: \xff\n"},
        ),
        InvalidWheelFile,
        "not UTF-8",
    ),
    "symbolic link": (
        make_wheel("demo", "1.0"),  # replaced below: zipfile needs a ZipInfo for the mode
        UnsafeMember,
        "symbolic link",
    ),
    "tar.gz appended": (
        Dist(WHEEL.filename, WHEEL.data + make_sdist("demo", "1.0").data),
        UnsafeArchive,
        "trailing data follow the ZIP end record",
    ),
    "not a ZIP": (Dist(WHEEL.filename, make_sdist("demo", "1.0").data), UnsafeArchive, "not a ZIP"),
}


def _wheel_with_symlink() -> Dist:
    buffer = io.BytesIO(WHEEL.data)
    with zipfile.ZipFile(buffer, "a") as archive:
        link = zipfile.ZipInfo("demo/link.py")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    return Dist(WHEEL.filename, buffer.getvalue())


WHEEL_CASES["symbolic link"] = (_wheel_with_symlink(), UnsafeMember, "symbolic link")


@pytest.mark.parametrize(("dist", "error", "reason"), WHEEL_CASES.values(), ids=WHEEL_CASES.keys())
def test_wheel_refused(
    tmp_path: Path, dist: Dist, error: type[InvalidDistribution], reason: str
) -> None:
    with pytest.raises(error) as caught:
        inspect(tmp_path, dist)
    assert reason in str(caught.value)


def test_wheel_with_unnormalised_dist_info_name(tmp_path: Path) -> None:
    # Older builders kept the project's spelling: Demo.Pkg-1.0.dist-info.
    dist = rewrite_wheel(
        make_wheel("Demo.Pkg", "1.0"),
        rename=lambda name: name.replace("demo_pkg-1.0", "Demo.Pkg-1.0"),
    )
    assert inspect(tmp_path, dist).name == "Demo.Pkg"


# ---------------------------------------------------------------------------------------------
# Sdist layout.

SDIST = make_sdist("demo", "1.0")
SDIST_CASES: dict[str, tuple[Dist, type[InvalidDistribution], str]] = {
    "no PKG-INFO": (
        rewrite_sdist(SDIST, rename=lambda name: name.replace("PKG-INFO", "README")),
        MissingMetadata,
        "no demo-1.0/PKG-INFO",
    ),
    "PKG-INFO only deeper down": (
        rewrite_sdist(SDIST, rename=lambda name: name.replace("/PKG-INFO", "/src/PKG-INFO")),
        MissingMetadata,
        "no demo-1.0/PKG-INFO",
    ),
    "top directory named for another version": (
        rewrite_sdist(SDIST, rename=lambda name: name.replace("demo-1.0", "demo-2.0")),
        InvalidLayout,
        "'demo-2.0/PKG-INFO' is outside the sdist's top-level directory demo-1.0/",
    ),
    "a member beside the top directory": (
        Dist(
            SDIST.filename,
            gz(tar(member(b"demo-1.0/PKG-INFO", b"x"), member(b"setup.py", b"evil"))),
        ),
        InvalidLayout,
        "'setup.py' is outside",
    ),
    "symbolic link": (
        Dist(SDIST.filename, gz(tar(member(b"demo-1.0/x", typeflag=b"2", linkname=b"/")))),
        UnsafeMember,
        "symbolic link",
    ),
    "ZIP appended": (
        Dist(SDIST.filename, SDIST.data + WHEEL.data),
        UnsafeArchive,
        "both a gzip-compressed tar archive and a ZIP archive",
    ),
    "a wheel named as an sdist": (Dist(SDIST.filename, WHEEL.data), UnsafeArchive, "not gzip"),
}


@pytest.mark.parametrize(("dist", "error", "reason"), SDIST_CASES.values(), ids=SDIST_CASES.keys())
def test_sdist_refused(
    tmp_path: Path, dist: Dist, error: type[InvalidDistribution], reason: str
) -> None:
    with pytest.raises(error) as caught:
        inspect(tmp_path, dist)
    assert reason in str(caught.value)


@pytest.mark.parametrize("make", [make_wheel, make_sdist], ids=["wheel", "sdist"])
def test_metadata_size_limit(tmp_path: Path, make: Callable[..., Dist]) -> None:
    with pytest.raises(MetadataTooLarge, match="at most"):
        inspect(tmp_path, make("demo", "1.0"), Limits(max_metadata_size=20))
