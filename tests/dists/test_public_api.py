"""The public surface of tilsit.dists is explicit, and its errors form one hierarchy."""

from __future__ import annotations

import inspect as pyinspect

import pytest

import tilsit.dists
from tilsit.dists import errors

PUBLIC = {
    "ArchiveBomb",
    "DistInfo",
    "InvalidCoreMetadata",
    "InvalidDistribution",
    "InvalidLayout",
    "InvalidWheelFile",
    "Limits",
    "MalformedArchive",
    "MetadataMismatch",
    "MetadataTooLarge",
    "MissingMetadata",
    "UnsafeArchive",
    "UnsafeMember",
    "inspect_distribution",
    "wheel_metadata",
}

ERRORS = [
    value
    for value in vars(errors).values()
    if pyinspect.isclass(value)
    and issubclass(value, Exception)
    and value.__module__ == errors.__name__
]


def test_all_is_the_public_surface() -> None:
    assert set(tilsit.dists.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(tilsit.dists, name)


def test_inspect_distribution_signature() -> None:
    parameters = pyinspect.signature(tilsit.dists.inspect_distribution).parameters
    assert list(parameters) == ["path", "filename", "limits"]
    assert parameters["limits"].default == tilsit.dists.Limits()


def test_limits_defaults() -> None:
    MiB = 1024 * 1024
    assert tilsit.dists.Limits() == tilsit.dists.Limits(
        max_members=100_000,
        max_member_size=512 * MiB,
        max_total_inflated=2048 * MiB,
        bomb_ratio=50.0,
        bomb_min_size=64 * MiB,
        max_metadata_size=2 * MiB,
    )


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.__name__)
def test_error_is_an_invalid_distribution_drawn_in_the_docstring(error: type[Exception]) -> None:
    assert issubclass(error, tilsit.dists.InvalidDistribution)
    assert issubclass(error, ValueError)
    assert error.__name__ in (errors.__doc__ or "")
    assert error.__name__ in tilsit.dists.__all__
