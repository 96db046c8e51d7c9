"""What ``tilsit verify`` can find wrong with a copy of an index, and its report.

Each fault has a name (``FAULTS``). Metadata faults (the copy cannot be
trusted at all) exit 2; target faults (some files are wrong) exit 1; a clean
copy exits 0. :func:`classify` names the fault for an error of python-tuf's
ngclient; :class:`Report` collects the faults and the counts of one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tuf.api import exceptions as tuf_errors

__all__ = [
    "ACCESS_DENIED",
    "BAD_METADATA",
    "BAD_SIGNATURE",
    "BROKEN_ROOT_CHAIN",
    "EXPIRED",
    "FAULTS",
    "METADATA_FAULTS",
    "MISSING",
    "MISSING_METADATA",
    "MIX_AND_MATCH",
    "OVERSIZED",
    "ROLLBACK",
    "TAMPERED",
    "TARGET_FAULTS",
    "UNLISTED",
    "UNREACHABLE",
    "Fault",
    "Report",
    "classify",
]

TAMPERED = "tampered file"
MISSING = "missing file"
UNLISTED = "unlisted path"
UNREACHABLE = "unreachable file"
TARGET_FAULTS = (TAMPERED, MISSING, UNLISTED, UNREACHABLE)

ROLLBACK = "rollback"
MIX_AND_MATCH = "mix-and-match"
BROKEN_ROOT_CHAIN = "broken root chain"
OVERSIZED = "oversized metadata"
EXPIRED = tuple(f"expired {role}" for role in ("root", "timestamp", "snapshot", "targets", "bins"))
BAD_SIGNATURE = "bad signature"
MISSING_METADATA = "missing metadata"
BAD_METADATA = "bad metadata"
ACCESS_DENIED = "access denied"
METADATA_FAULTS = (
    ACCESS_DENIED,
    ROLLBACK,
    MIX_AND_MATCH,
    BROKEN_ROOT_CHAIN,
    OVERSIZED,
    *EXPIRED,
    BAD_SIGNATURE,
    MISSING_METADATA,
    BAD_METADATA,
)
FAULTS = (*METADATA_FAULTS, *TARGET_FAULTS)


@dataclass(frozen=True)
class Fault:
    name: str  # one of FAULTS
    path: str  # a target path, a plain URL path or a metadata file name
    detail: str

    @property
    def is_metadata(self) -> bool:
        return self.name in METADATA_FAULTS


@dataclass
class Report:
    source: str
    faults: list[Fault] = field(default_factory=list)
    root_version: int = 0
    timestamp_version: int = 0
    bins: int = 0
    targets_listed: int = 0
    targets_checked: int = 0
    plain_checked: int = 0
    pages_read: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0
    # Files a proxy index links but has not fetched from its upstream yet (URL paths).
    not_yet_fetched: list[str] = field(default_factory=list)
    # A mirror signed by its own server rather than its origin (the root's signed
    # "x-tilsit-resigned" field): {"upstream": URL, "reason": why}.
    resigned: dict[str, object] | None = None

    @property
    def exit_code(self) -> int:
        if any(f.is_metadata for f in self.faults):
            return 2
        return 1 if self.faults else 0

    def add(self, name: str, path: str, detail: str) -> None:
        self.faults.append(Fault(name, path, detail))

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "ok": not self.faults,
            "exit_code": self.exit_code,
            "faults": [{"fault": f.name, "path": f.path, "detail": f.detail} for f in self.faults],
            "root_version": self.root_version,
            "timestamp_version": self.timestamp_version,
            "bins": self.bins,
            "targets_listed": self.targets_listed,
            "targets_checked": self.targets_checked,
            "plain_checked": self.plain_checked,
            "pages_read": self.pages_read,
            "bytes_checked": self.bytes_checked,
            "seconds": round(self.seconds, 3),
            "resigned": self.resigned,
            "not_yet_fetched": self.not_yet_fetched,
        }

    def summary(self) -> str:
        lines = [f"FAULT {f.name}: {f.path}: {f.detail}" for f in self.faults]
        if self.resigned is not None:
            lines.append(
                f"RE-SIGNED: a mirror of {self.resigned.get('upstream')} signed by its own"
                f" server's root, not the origin's: {self.resigned.get('reason')}"
            )
        if self.not_yet_fetched:
            shown = ", ".join(p.rsplit("/", 1)[-1] for p in self.not_yet_fetched[:3])
            more = len(self.not_yet_fetched) - 3
            lines.append(
                f"NOT YET FETCHED: {len(self.not_yet_fetched)} file(s) the proxy lists but has"
                f" not fetched from its upstream ({shown}{f', and {more} more' if more > 0 else ''});"
                " its signed pages pin their hashes, and each is signed once fetched"
            )
        verdict = "OK" if not self.faults else f"{len(self.faults)} fault(s)"
        lines.append(
            f"{verdict}: {self.source}: root v{self.root_version}, timestamp "
            f"v{self.timestamp_version}, {self.bins} bins, {self.targets_listed} targets listed, "
            f"{self.targets_checked} checked ({self.bytes_checked} bytes), "
            f"{self.plain_checked} plain names, {self.pages_read} pages read, "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


_ROLE_IN_MESSAGE = re.compile(r"\b(root|timestamp|snapshot|targets|bins-[0-9a-f]+)\b")


def classify(exc: Exception, *, gap: bool) -> tuple[str, str]:
    """The fault name and the role concerned for an ngclient metadata error."""
    message = str(exc)
    found = _ROLE_IN_MESSAGE.search(message)
    role = found.group(1) if found else "metadata"
    if gap and isinstance(exc, tuf_errors.UnsignedMetadataError):
        # Signed by keys of a root version the client never reached.
        return BROKEN_ROOT_CHAIN, role
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return f"expired {'bins' if role.startswith('bins-') else role}", role
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        if role == "root" or message.startswith("Expected root"):
            return BROKEN_ROOT_CHAIN, "root"
        # "New timestamp version 1 must be >= 5", "New snapshot version must
        # be >= …", and a new snapshot naming an older "bins-7.json version"
        # than the trusted one: the copy went back in time.
        if " must be >= " in message or re.match(r"Expected \S+\.json version", message):
            return ROLLBACK, role
        # "Expected snapshot version 2, got 1", "Expected bins-7 v2, got v1.":
        # a file that is not the version its signed parent names.
        return MIX_AND_MATCH, role
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return (BROKEN_ROOT_CHAIN if role == "root" else BAD_SIGNATURE), role
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return MIX_AND_MATCH, role
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return OVERSIZED, role
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        if exc.status_code in (401, 403):
            return ACCESS_DENIED, role
        return MISSING_METADATA, role
    return BAD_METADATA, role
