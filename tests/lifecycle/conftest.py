"""Every test here drives CLI commands, which need a data directory (only serve and init make one)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tilsit.config import Settings


@pytest.fixture(autouse=True)
def data_directory(settings: Settings) -> None:
    run_cli(settings, "init")
