"""Opening the server's key set: under the trust lock, after any interrupted key change.

A root or key change that a crash interrupted is first finished or rolled back
(:func:`tilsit.trust.rotation.recover`), so what loads is always one whole key
set. This sits above both :mod:`tilsit.trust.keys` (reading and making keys) and
:mod:`tilsit.trust.rotation` (changing them), which therefore never import each
other in a loop.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path

from tilsit.trust.keys import KeySet, KeysExist, TrustSettings, init_keys, read_keys, trust_dir
from tilsit.trust.rotation import recover, trust_lock

__all__ = ["load_keys", "open_keys"]


def load_keys(data: Path) -> KeySet:
    """Load the trusted metadata and the online key; refuse unsafe or mismatched keys."""
    with trust_lock(data):
        recover(data)
        return read_keys(data)


def open_keys(data: Path, settings: TrustSettings, now: datetime) -> KeySet:
    """Load the keys, generating a first set if the data directory has none (like SSH host keys)."""
    if not (trust_dir(data) / "1.root.json").exists():
        with contextlib.suppress(KeysExist):  # another process won the race
            return init_keys(data, settings, now)
    return load_keys(data)
