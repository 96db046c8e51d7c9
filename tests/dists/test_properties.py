"""Property tests: damaged archives are refused with InvalidDistribution, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import Dist, make_sdist, make_wheel
from tilsit.dists import InvalidDistribution, inspect_distribution
from tilsit.spec.filenames import parse_dist_filename

WHEEL = make_wheel("demo", "1.0", members={"demo/data.txt": b"data " * 50})
SDIST = make_sdist("demo", "1.0", members={"demo-1.0/data.txt": b"data " * 50})
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def damaged(dist: Dist) -> st.SearchStrategy[bytes]:
    """``dist``'s bytes with a few bytes changed, or cut short."""
    size = len(dist.data)
    flips = st.lists(
        st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1, max_size=6
    )

    def flip(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(dist.data)
        for position, mask in changes:
            data[position] ^= mask
        return bytes(data)

    return st.one_of(flips.map(flip), st.integers(0, size - 1).map(lambda cut: dist.data[:cut]))


def inspect_bytes(dist: Dist, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / dist.filename
        path.write_bytes(data)
        try:
            inspect_distribution(path, parse_dist_filename(dist.filename))
        except InvalidDistribution as exc:
            assert str(exc)


@SETTINGS
@given(damaged(WHEEL))
def test_damaged_wheels_are_refused_cleanly(data: bytes) -> None:
    inspect_bytes(WHEEL, data)


@SETTINGS
@given(damaged(SDIST))
def test_damaged_sdists_are_refused_cleanly(data: bytes) -> None:
    inspect_bytes(SDIST, data)
