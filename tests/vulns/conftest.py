"""Fixtures of the OSV tests: the CLI run in-process on the test's instance."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from tests.conftest import settings_env
from tilsit.cli import main
from tilsit.config import Settings
from tilsit.instance import Instance

Run = Callable[..., Result]


@pytest.fixture
def run(settings: Settings, instance: Instance) -> Run:
    """Run a command on the test's instance; ``code`` is the exit status it must give."""

    def invoke(*args: str, code: int = 0) -> Result:
        env = settings_env(settings)
        result = CliRunner().invoke(main, [*args, "--data", str(settings.data)], env=env)
        assert result.exit_code == code, result.output
        return result

    return invoke
