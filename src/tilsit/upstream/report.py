"""What a mirror sync tells: its report (counts, failures, the summary line) and its progress.

:class:`Reporter` is the progress a human sees (a rich display on a terminal, log
lines otherwise); :class:`SyncReport` what one run did, kept by the sync and
printed as one summary line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["FAILURES_KEPT", "Reporter", "Silent", "SyncReport"]

# The failures a report names with their reasons, at most. A run against an
# upstream that went down fails every project it tries: a reason for each of
# 100,000 projects would be the one thing a sync holds per project. Past this,
# failures are counted; each one was reported (:meth:`Reporter.project`) as it
# happened, and ``last_error`` shows the first few.
FAILURES_KEPT = 100


class Reporter(Protocol):
    """Progress for a human: a rich display on a terminal, log lines otherwise."""

    def begin(self, total: int) -> None: ...

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


class Silent:
    def begin(self, total: int) -> None:
        pass

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def end(self) -> None:
        pass


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"  # pragma: no cover


@dataclass
class SyncReport:
    index: str
    upstream_serial: int | None = None
    synced_serial: int | None = None
    listed: int = 0  # projects on the upstream root
    selected: int = 0  # of those, kept by the filters
    synced: int = 0  # projects whose page changed here
    unchanged: int = 0  # fetched (or revalidated) and found the same
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # the first FAILURES_KEPT: reasons
    failures: int = 0  # projects that failed, named in ``failed`` or not
    files: int = 0  # files and metadata files fetched
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None  # a failure of the whole run (root unreachable, bad filters)

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None

    def fail(self, name: str, reason: str) -> None:
        """Record that project ``name`` failed; its reason is kept for the first few."""
        if name in self.failed:
            self.failed[name] = reason
            return
        self.failures += 1
        if len(self.failed) < FAILURES_KEPT:
            self.failed[name] = reason

    def summary(self) -> str:
        text = (
            f"mirror {self.index}: {self.synced} project(s) synced, {self.unchanged} unchanged,"
            f" {self.removed} removed, {self.failures} failed;"
            f" {self.files} file(s), {_size(self.bytes)} fetched; {self.requests} request(s);"
            f" {self.seconds:.2f} s; upstream serial {self.upstream_serial},"
            f" synced serial {self.synced_serial}"
        )
        if self.error:
            text += f"; error: {self.error}"
        return text
