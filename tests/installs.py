"""pip, run as a client installs: into a target directory, with no cache and no version
check, so each install fetches from the index under test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pip_install(*args: str, target: Path) -> subprocess.CompletedProcess[str]:
    """``pip install --target TARGET ARGS``: requirements, files, ``--index-url``, ``--no-deps``."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir",
         "--disable-pip-version-check", "--target", str(target), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
