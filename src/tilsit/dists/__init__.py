"""Reading wheels and sdists safely: in memory, member by member, never extracted.

:func:`inspect_distribution` is the whole contract for the upload path: it returns the
:class:`DistInfo` the index keeps, or raises an :class:`InvalidDistribution` whose message is
shown to the uploader. The readers below it are strict on purpose (see :mod:`.zipdir`,
:mod:`.zipread`, :mod:`.tarread`): an archive that two tools could read differently is
refused, never guessed at.
"""

from tilsit.dists.errors import (
    ArchiveBomb,
    InvalidCoreMetadata,
    InvalidDistribution,
    InvalidLayout,
    InvalidWheelFile,
    MalformedArchive,
    MetadataMismatch,
    MetadataTooLarge,
    MissingMetadata,
    UnsafeArchive,
    UnsafeMember,
)
from tilsit.dists.inspect import DistInfo, inspect_distribution, wheel_metadata
from tilsit.dists.limits import Limits

__all__ = [
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
]
