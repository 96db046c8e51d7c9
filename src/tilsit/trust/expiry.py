"""When each role's metadata expires, and warnings for the roles only offline keys can renew.

Timestamp, snapshot and bins are re-signed by the server (the freshness pass).
Root and targets are signed by keys that may be kept offline, so the server
cannot renew them: an operator must run ``tilsit keys resign`` in time. This
report is what ``/_/health`` and ``tilsit keys show`` tell them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Snapshot, Timestamp

from tilsit.store.tree import PRIVATE_MARKER
from tilsit.trust.keys import KeyError_, KeySet
from tilsit.trust.layout import tuf_dir
from tilsit.trust.repository import Signing
from tilsit.trust.settings import utcnow

__all__ = ["WARN_BEFORE", "expiry_report", "trust_health"]

# Long enough to fetch offline keys from a safe; `keys resign` renews both roles.
WARN_BEFORE = timedelta(days=30)


def _role(version: int, expires: datetime, now: datetime) -> dict[str, Any]:
    return {
        "version": version,
        "expires": expires.isoformat().replace("+00:00", "Z"),
        "seconds_left": int((expires - now).total_seconds()),
    }


def _index_roles(tree: Path, index: str, now: datetime) -> dict[str, Any]:
    directory = tree / tuf_dir(index)
    timestamp = Metadata[Timestamp].from_bytes((directory / "timestamp.json").read_bytes())
    roles = {"timestamp": _role(timestamp.signed.version, timestamp.signed.expires, now)}
    version = timestamp.signed.snapshot_meta.version
    try:
        snapshot = Metadata[Snapshot].from_bytes(
            (directory / f"{version}.snapshot.json").read_bytes()
        )
    except FileNotFoundError:  # replaced between the two reads: the next look sees it
        return roles
    roles["snapshot"] = _role(snapshot.signed.version, snapshot.signed.expires, now)
    return roles


def expiry_report(keys: KeySet, tree: Path, now: datetime) -> dict[str, Any]:
    """``{"root": …, "targets": …, "indexes": {name: {timestamp, snapshot}}, "warnings": […]}``."""
    root = keys.root.signed
    targets = keys.targets.signed
    report: dict[str, Any] = {
        "root": _role(root.version, root.expires, now),
        "targets": _role(targets.version, targets.expires, now),
        "indexes": {},
    }
    for path in sorted(tree.glob("*/tuf/timestamp.json")):
        index = path.parent.parent.name
        if (tree / index / PRIVATE_MARKER).exists():
            continue  # a private index's name is not for anonymous eyes
        try:
            report["indexes"][index] = _index_roles(tree, index, now)
        except (OSError, ValueError) as exc:
            report["indexes"][index] = {"error": str(exc)}
    warnings = []
    for name, signed in (("root", root), ("targets", targets)):
        left = signed.expires - now
        if left <= timedelta(0):
            warnings.append(
                f"TUF {name} metadata (version {signed.version}) expired on"
                f" {signed.expires.date().isoformat()}: clients refuse every index;"
                " run `tilsit keys resign`"
            )
        elif left < WARN_BEFORE:
            warnings.append(
                f"TUF {name} metadata (version {signed.version}) expires in {left.days} days"
                f" ({signed.expires.date().isoformat()}); its keys may be offline, so the"
                " server cannot renew it: run `tilsit keys resign` before then"
            )
    report["warnings"] = warnings
    return report


def trust_health(signing: Signing) -> dict[str, Any]:
    """The ``trust`` and ``warnings`` members of ``/_/health``."""
    try:
        report = expiry_report(signing.latest_keys(), signing.tree.root, utcnow())
    except (OSError, ValueError, KeyError_) as exc:  # a health check reports, never fails
        return {"trust": {"error": str(exc)}, "warnings": [f"TUF keys unreadable: {exc}"]}
    warnings = report.pop("warnings")
    return {"trust": report, "warnings": warnings}
