"""Validating core metadata (METADATA, PKG-INFO) as PyPI does at upload.

``packaging`` checks the core metadata specification itself; this module adds the rules an
index applies on top, the ones PyPI applies: a supported Metadata-Version, no local versions,
a short one-line summary, known trove classifiers, no direct-URL requirements. Every problem
is collected, so an uploader learns everything that needs fixing from one refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import trove_classifiers
from packaging.metadata import _EMAIL_TO_RAW_MAPPING as _EMAIL_FIELDS
from packaging.metadata import InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from tilsit.dists.errors import InvalidCoreMetadata

__all__ = ["MAX_SUMMARY_LENGTH", "SUPPORTED_METADATA_VERSIONS", "ParsedMetadata", "parse_metadata"]

# The versions an index accepts. 2.0 was never a published specification, but
# wheel and setuptools wrote it for years, PyPI lists it as supported, and pip
# installs such wheels; it is validated by the 2.1 rules.
SUPPORTED_METADATA_VERSIONS = ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5")
# packaging refuses a field that is newer than the declared Metadata-Version
# ("license-file introduced in metadata version 2.4, not 2.1"). setuptools wrote
# License-File under 2.1 for years, and installers read such files fine, so the
# mismatch is tolerated: refusing 15% of real wheels (measured on this machine's
# PyPI wheels) would stop organisations moving their packages here, for no safety.
_NEWER_FIELD = "introduced in metadata version"
MAX_SUMMARY_LENGTH = 512
# PyPI refuses these on purpose, so that private projects cannot be uploaded there by
# mistake; a private index is exactly where they belong.
PRIVATE_CLASSIFIER_PREFIX = "Private :: "


@dataclass(frozen=True, slots=True)
class ParsedMetadata:
    """Validated core metadata, and the raw values as the file wrote them."""

    metadata: Metadata
    raw: RawMetadata


def parse_metadata(data: bytes, *, source: str) -> ParsedMetadata:
    """Parse and validate core metadata, raising :class:`InvalidCoreMetadata` listing all problems.

    ``source`` names the file (``METADATA``, ``PKG-INFO``) in the message.
    """
    problems: list[tuple[str, str]] = []
    metadata = None
    raw, unparsed = parse_email(data)
    checked = dict(raw)
    if checked.get("metadata_version") == "2.0":
        checked["metadata_version"] = "2.1"
    for key in unparsed:
        # What packaging's from_email(validate=True) reports, and so PyPI refuses.
        known = key.lower() in _EMAIL_FIELDS
        problems.append(
            (key.lower(), f"{key!r} has invalid data" if known else f"unrecognized field: {key!r}")
        )
    try:
        metadata = Metadata.from_raw(checked, validate=True)  # type: ignore[arg-type]
    except ExceptionGroup as group:
        # A field already reported as unparsable is not reported again as missing.
        seen = {field for field, _message in problems}
        problems.extend(p for p in _leaves(group) if _NEWER_FIELD not in p[1] and p[0] not in seen)
        if not problems:  # only tolerated problems: keep the parse, unvalidated
            metadata = Metadata.from_raw(checked, validate=False)  # type: ignore[arg-type]
    flagged = {field for field, _message in problems}
    problems.extend(problem for problem in _index_rules(raw) if problem[0] not in flagged)
    if problems or metadata is None:
        raise InvalidCoreMetadata(source, problems)
    return ParsedMetadata(metadata, raw)


def _leaves(group: BaseExceptionGroup[Exception]) -> list[tuple[str, str]]:
    """``(field, message)`` for each problem ``packaging`` reported, however nested."""
    found: list[tuple[str, str]] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        elif isinstance(exc, InvalidMetadata):
            found.append((exc.field, str(exc)))
        else:  # packaging wraps its problems in InvalidMetadata; this is a safety net
            found.append(("metadata", str(exc)))
    return found


def _index_rules(raw: RawMetadata) -> list[tuple[str, str]]:
    """The problems PyPI's own rules find in ``raw``, beyond the specification's."""
    problems: list[tuple[str, str]] = []
    metadata_version = raw.get("metadata_version")
    if metadata_version is not None and metadata_version not in SUPPORTED_METADATA_VERSIONS:
        problems.append(
            (
                "metadata-version",
                f"Metadata-Version {metadata_version!r} is not supported (this index accepts"
                f" {SUPPORTED_METADATA_VERSIONS[0]} to {SUPPORTED_METADATA_VERSIONS[-1]})",
            )
        )
    version = raw.get("version")
    if version is not None:
        try:
            parsed = Version(version)
        except InvalidVersion:
            pass  # packaging has reported it
        else:
            if parsed.local is not None:
                problems.append(
                    (
                        "version",
                        f"the local version {version!r} cannot be uploaded: local versions"
                        " (after a '+') are for builds that are never published",
                    )
                )
    summary = raw.get("summary")
    if summary is not None:
        if "\n" in summary or "\r" in summary:
            problems.append(("summary", "'summary' must be a single line"))
        if len(summary) > MAX_SUMMARY_LENGTH:
            problems.append(
                (
                    "summary",
                    f"'summary' is {len(summary)} characters, over the limit of"
                    f" {MAX_SUMMARY_LENGTH}",
                )
            )
    for classifier in raw.get("classifiers", []):
        problem = _classifier_problem(classifier)
        if problem is not None:
            problems.append(("classifier", problem))
    for text in raw.get("requires_dist", []):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # packaging has reported it
        if requirement.url is not None:
            problems.append(
                (
                    "requires-dist",
                    f"the requirement {text!r} is a direct URL reference, which a release on an"
                    " index cannot depend on",
                )
            )
    return problems


def _classifier_problem(classifier: str) -> str | None:
    if classifier.startswith(PRIVATE_CLASSIFIER_PREFIX):
        return None
    if classifier in trove_classifiers.deprecated_classifiers:
        replacements = trove_classifiers.deprecated_classifiers[classifier]
        instead = f" (use {' or '.join(map(repr, replacements))})" if replacements else ""
        return f"the classifier {classifier!r} is deprecated{instead}"
    if classifier not in trove_classifiers.classifiers:
        return f"{classifier!r} is not a valid trove classifier"
    return None
