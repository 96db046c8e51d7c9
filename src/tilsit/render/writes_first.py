"""Writes first: upkeep that runs beside uploads waits while one is in flight.

``tilsit serve`` runs upkeep in worker threads: the TUF freshness pass and sweep, the
coalesced project lists. At 100,000 projects a pass reads thousands of bins and
snapshots, and in one process it shares the interpreter with the uploads it runs
beside: the first upload after a start took four times as long as the next ones. A
write marks itself in flight (:meth:`WritesFirst.writing`, in the upload route and
around every render of the journal); upkeep calls :meth:`WritesFirst.wait` between
its small steps, which returns once no write is in flight, or after ``patience``
seconds so that a steady stream of uploads cannot starve re-signing before expiry.

The gate is per process: with several workers, each one's upkeep yields to its own
uploads (the render lock orders the rest across processes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PATIENCE", "WritesFirst"]

# How long one step of upkeep waits for a quiet moment before it goes ahead anyway:
# at 10 uploads a second one is in flight most of the time, and a re-signing pass
# must still finish within minutes.
PATIENCE = 2.0


class WritesFirst:
    def __init__(self, patience: float = PATIENCE) -> None:
        self.patience = patience
        self._in_flight = 0
        self._quiet = threading.Condition()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Mark a write in flight for the ``with`` block (re-entrant: it counts)."""
        with self._quiet:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._quiet:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._quiet.notify_all()

    def in_flight(self) -> int:
        with self._quiet:
            return self._in_flight

    def wait(self) -> bool:
        """Return once no write is in flight (True) or after ``patience`` (False)."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._in_flight == 0, self.patience)
