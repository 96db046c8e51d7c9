"""The harness itself: no caller configuration reaches a client run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.tools import Sandbox, clean_env, describe

LEAKY = {
    "PIP_FIND_LINKS": "/opt/wheels",
    "PIP_INDEX_URL": "https://example.invalid/simple/",
    "UV_INDEX_URL": "https://example.invalid/simple/",
    "UV_EXTRA_INDEX_URL": "https://example.invalid/simple/",
    "POETRY_REPOSITORIES_X_URL": "https://example.invalid/",
    "PDM_PYPI_URL": "https://example.invalid/simple/",
    "HATCH_INDEX_REPO": "https://example.invalid/",
    "TWINE_REPOSITORY_URL": "https://example.invalid/",
    "VIRTUAL_ENV": "/somewhere/.venv",
    "PYTHONPATH": "/somewhere/src",
    "GITHUB_ACTIONS": "true",
    "CI": "true",
}

# What clean_env sets on purpose, by prefix.
OWN = {
    "PIP_CONFIG_FILE",
    "PIP_NO_INPUT",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_CACHE_DIR",
    "UV_NO_CONFIG",
    "UV_CACHE_DIR",
    "UV_PYTHON_DOWNLOADS",
    "POETRY_CONFIG_DIR",
    "POETRY_DATA_DIR",
    "POETRY_CACHE_DIR",
    "POETRY_VIRTUALENVS_CREATE",
    "PDM_CHECK_UPDATE",
    "PDM_USE_VENV",
    "PYTHON_KEYRING_BACKEND",
    "PYTHONDONTWRITEBYTECODE",
}


def test_clean_env_drops_the_callers_client_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in LEAKY.items():
        monkeypatch.setenv(key, value)
    env = clean_env(tmp_path / "home", tmp_path / "cache", tmp_path / "bin")
    assert not set(LEAKY) & set(env)
    prefixed = {
        key
        for key in env
        if key.startswith(("PIP_", "UV_", "POETRY_", "PDM_", "HATCH_", "TWINE_", "PYTHON"))
    }
    assert prefixed == OWN
    assert env["PIP_CONFIG_FILE"] == "/dev/null"
    assert env["HOME"] == str(tmp_path / "home")
    assert env["PATH"].split(":")[0] == str(tmp_path / "bin")
    assert "example.invalid" not in repr(env)


@pytest.mark.clients
def test_pip_sees_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # /etc/pip.conf and ~/.config/pip/pip.conf on this machine add indexes and find-links.
    for key, value in LEAKY.items():
        monkeypatch.setenv(key, value)
    result = Sandbox(tmp_path).run("pip", "config", "list")
    assert result.returncode == 0, describe(result)
    # Only what clean_env sets itself (as ":env:" entries) may show.
    for line in result.stdout.splitlines():
        assert line.startswith(":env:."), describe(result)
    for leaked in ("find-links", "index-url", "cert", "example.invalid"):
        assert leaked not in result.stdout, describe(result)
