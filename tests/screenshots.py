"""Screenshots of web pages, kept as test artefacts.

Browser tests call :func:`shoot` for each page they show; the images go to
``$TILSIT_TEST_ARTIFACTS/screenshots/`` (default ``test-artifacts/`` in the
repository, which git ignores), named for the page and the viewport width, so
a run leaves a set a person can look through.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["SCREEN_WIDTHS", "artifacts_dir", "shoot"]

# The two widths every browsing page is checked at: a desktop and a small phone.
SCREEN_WIDTHS = (1280, 375)


def artifacts_dir() -> Path:
    root = os.environ.get("TILSIT_TEST_ARTIFACTS")
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "test-artifacts"
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Any, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``<name>-<width>px.png`` and return its path."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    path = artifacts_dir() / f"{safe}-{width}px.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path
