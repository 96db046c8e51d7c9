"""Why a distribution is refused.

Every refusal is an :class:`InvalidDistribution`, and ``str(exc)`` is one or two sentences
written for the uploader: the upload route shows it as is, with HTTP 400. Nothing about a
refused upload is stored. The hierarchy::

    InvalidDistribution (ValueError)
    ├── UnsafeArchive          two readers could read it differently, or extracting it could harm
    │   ├── MalformedArchive   not a well-formed ZIP, gzip or tar stream: truncated, bad checksum,
    │   │                      bad CRC, corrupt compressed data
    │   └── UnsafeMember       one member is a link, device, FIFO or sparse file, or its path
    │                          escapes (absolute, '..', backslash, drive letter)
    ├── ArchiveBomb            more members or inflated bytes than the Limits allow
    ├── MetadataTooLarge       METADATA, WHEEL or PKG-INFO bigger than Limits.max_metadata_size
    ├── InvalidLayout          the members are not where the wheel or sdist spec puts them
    ├── MissingMetadata        no METADATA, WHEEL or PKG-INFO where the specs put them
    ├── InvalidWheelFile       the WHEEL file is not one this index can read
    ├── InvalidCoreMetadata    core metadata that breaks the spec or this index's rules
    └── MetadataMismatch       the filename and the metadata disagree on the name or version

A malformed archive is a kind of unsafe archive on purpose: an archive that only parses with
guesswork is one that two readers (this index and an installer) may guess about differently.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArchiveBomb",
    "InvalidCoreMetadata",
    "InvalidDistribution",
    "InvalidLayout",
    "InvalidWheelFile",
    "MalformedArchive",
    "MetadataMismatch",
    "MetadataTooLarge",
    "MissingMetadata",
    "UnsafeArchive",
    "UnsafeMember",
]


class InvalidDistribution(ValueError):
    """A wheel or sdist this index refuses; ``str()`` says why, for the uploader."""


class UnsafeArchive(InvalidDistribution):
    """An archive that readers could disagree about, or that would be unsafe to extract.

    ZIP confusion (duplicate or contradictory records, prefixes, trailing data, hidden entries)
    and polyglots (a file that is both a ZIP and a tar.gz) are refused with this.
    """


class MalformedArchive(UnsafeArchive):
    """Bytes that are not a well-formed archive of the kind the filename promises."""


class UnsafeMember(UnsafeArchive):
    """A member that is not a plain file or directory, or whose path escapes the archive."""


class ArchiveBomb(InvalidDistribution):
    """An archive that inflates past the caps or ratios of its :class:`~tilsit.dists.Limits`."""


class MetadataTooLarge(InvalidDistribution):
    """A METADATA, WHEEL or PKG-INFO file larger than ``Limits.max_metadata_size``."""


class InvalidLayout(InvalidDistribution):
    """Members that are not where the wheel or sdist specification puts them."""


class MissingMetadata(InvalidDistribution):
    """No METADATA or WHEEL in the wheel's ``.dist-info``, or no PKG-INFO at the sdist's top."""


class InvalidWheelFile(InvalidDistribution):
    """A ``.dist-info/WHEEL`` file that is unreadable or of an unsupported Wheel-Version."""


class InvalidCoreMetadata(InvalidDistribution):
    """Core metadata that breaks the spec or this index's rules.

    Every problem found is listed at once, so one failed upload tells the uploader all that
    needs fixing. ``problems`` holds ``(field, message)`` pairs, with the field named as
    ``packaging`` names it (the lower-case header name, e.g. ``"requires-dist"``).
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = tuple(problems)
        listing = "; ".join(message for _field, message in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"The core metadata in {source} has {count} {noun}: {listing}.")

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields with problems, each once, in the order found."""
        return tuple(dict.fromkeys(field for field, _message in self.problems))


class MetadataMismatch(InvalidDistribution):
    """The filename and the core metadata disagree on the project ``name`` or ``version``."""

    def __init__(self, field: str, filename_value: str, metadata_value: str) -> None:
        self.field = field
        self.filename_value = filename_value
        self.metadata_value = metadata_value
        super().__init__(
            f"The filename gives the {field} as {filename_value!r}, but the metadata gives"
            f" {metadata_value!r}; they must agree."
        )
