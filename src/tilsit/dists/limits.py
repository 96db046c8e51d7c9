"""Caps on what reading one archive may cost.

Archives are read in memory, member by member (principle 4), so every size an archive
declares is checked before work starts, and every byte actually inflated is counted as it
is produced: a declared size is only a claim, and a bomb lies about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilsit.dists.errors import ArchiveBomb

__all__ = ["DEFAULT_LIMITS", "InflationBudget", "Limits", "format_size"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    """What one distribution may contain; the defaults suit any real upload."""

    max_members: int = 100_000
    max_member_size: int = 512 * MiB  # inflated, per member
    max_total_inflated: int = 2 * GiB  # inflated, all members read
    # PyPI's rule: more than 64 MiB inflated at more than 50x compression is refused.
    bomb_ratio: float = 50.0
    bomb_min_size: int = 64 * MiB
    max_metadata_size: int = 2 * MiB  # METADATA / PKG-INFO / WHEEL bytes

    def is_bomb(self, inflated: int, compressed: int) -> bool:
        """Whether ``inflated`` bytes from ``compressed`` ones break PyPI's ratio rule."""
        return inflated > self.bomb_min_size and inflated > self.bomb_ratio * compressed


DEFAULT_LIMITS = Limits()


def format_size(size: int) -> str:
    """``size`` bytes for a person: ``"3 bytes"``, ``"64 MiB"``, ``"2.5 GiB"``."""
    if size < KiB:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


class InflationBudget:
    """Counts the bytes really inflated from one archive file and stops at the caps.

    ``compressed_size`` is the size of the whole file on disk, so the ratio checked here is
    the archive's overall one, measured rather than declared.
    """

    def __init__(self, limits: Limits, compressed_size: int) -> None:
        self.limits = limits
        self.compressed_size = compressed_size
        self.inflated = 0

    def spend(self, size: int) -> None:
        """Count ``size`` more inflated bytes; raise :class:`ArchiveBomb` past a cap."""
        self.inflated += size
        limits = self.limits
        if self.inflated > limits.max_total_inflated:
            raise ArchiveBomb(
                f"The archive inflates to more than {format_size(limits.max_total_inflated)},"
                " the most this index reads from one distribution."
            )
        if limits.is_bomb(self.inflated, self.compressed_size):
            raise ArchiveBomb(
                f"The archive inflates to more than {format_size(self.inflated)} from"
                f" {format_size(self.compressed_size)}, a ratio above"
                f" {limits.bomb_ratio:g} to 1: it looks like a decompression bomb."
            )
