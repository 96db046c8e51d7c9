"""Run the real packaging clients installed in ``.tools/`` by ``scripts/install-clients``.

Every run gets a scrubbed environment: this machine (and a developer's) configures pip
and friends globally (``/etc/pip.conf``, ``~/.config/pip/pip.conf``, ``PIP_FIND_LINKS``,
``UV_INDEX_URL``, ...), and any of that leaking into a run could make a client read from
somewhere other than the test server. So a run starts from an allow-list of variables,
gets a temporary HOME and XDG directories, its own empty caches (a warm cache would hide
a request from the server's access log), no config files, and a dead HTTP proxy for
everything except 127.0.0.1: a client that tried to reach a public index fails fast
instead of quietly succeeding.

A client missing from ``.tools/`` skips the test locally and fails it when ``CI=true``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import need

__all__ = ["REPO", "TOOLS", "Sandbox", "binary", "clean_env", "describe", "output"]

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"

# Variables a client run keeps from the caller; everything else is dropped, so no
# PIP_*, UV_*, POETRY_*, PDM_*, HATCH_*, TWINE_*, VIRTUAL_ENV, PYTHONPATH, CI or
# GITHUB_ACTIONS (which switches uv and twine to trusted publishing) reaches a client.
_KEPT = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
# Nothing listens on the discard port: a request that does not go to 127.0.0.1 fails.
_DEAD_PROXY = "http://127.0.0.1:9"
_LOCAL = "127.0.0.1,localhost"
_runs = itertools.count()


def binary(tool: str, executable: str | None = None) -> Path:
    """``.tools/<tool>/bin/<executable>``; skips (fails in CI) when it is not installed."""
    path = TOOLS / tool / "bin" / (executable or tool)
    need(path.is_file(), f"{tool} is not installed at {path}: run scripts/install-clients")
    return path


def _clean_path(first: Path) -> str:
    """PATH with ``first`` in front and without any virtualenv's bin directory.

    A client looking for "python" (poetry, pdm, hatch) must not find the test runner's
    virtualenv, which has tilsit installed.
    """
    entries = [str(first)]
    for entry in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep):
        if entry and not (Path(entry).parent / "pyvenv.cfg").exists() and entry not in entries:
            entries.append(entry)
    return os.pathsep.join(entries)


def clean_env(home: Path, cache: Path, tool_bin: Path) -> dict[str, str]:
    """The whole environment of one client run (see the module docstring)."""
    env = {key: os.environ[key] for key in _KEPT if key in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        {
            "PATH": _clean_path(tool_bin),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_CACHE_HOME": str(cache),
            "HTTP_PROXY": _DEAD_PROXY,
            "HTTPS_PROXY": _DEAD_PROXY,
            "ALL_PROXY": _DEAD_PROXY,
            "http_proxy": _DEAD_PROXY,
            "https_proxy": _DEAD_PROXY,
            "all_proxy": _DEAD_PROXY,
            "NO_PROXY": _LOCAL,
            "no_proxy": _LOCAL,
            # Plain, unwrapped output to assert on (rich wraps at COLUMNS).
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "400",
            # No keyring daemon: a lookup must not hang or prompt.
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "PYTHONDONTWRITEBYTECODE": "1",
            # pip: no config file at all (not /etc/pip.conf, not ~/.config/pip).
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INPUT": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CACHE_DIR": str(cache / "pip"),
            # uv: no uv.toml or pyproject settings, no interpreter downloads.
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(cache / "uv"),
            "UV_PYTHON_DOWNLOADS": "never",
            # poetry: config, cache and data under the temporary HOME; no virtualenvs.
            "POETRY_CONFIG_DIR": str(home / ".config" / "pypoetry"),
            "POETRY_DATA_DIR": str(home / ".local" / "share" / "pypoetry"),
            "POETRY_CACHE_DIR": str(cache / "pypoetry"),
            "POETRY_VIRTUALENVS_CREATE": "false",
            # pdm: no self-update check against PyPI, no virtualenv per project.
            "PDM_CHECK_UPDATE": "false",
            "PDM_USE_VENV": "false",
        }
    )
    return env


@dataclass
class Sandbox:
    """A temporary HOME for one test; each run gets fresh caches under it."""

    root: Path
    timeout: float = 180
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def run(
        self,
        tool: str,
        *args: str | Path,
        executable: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``.tools/<tool>/bin/<executable or tool> args...``; never raises on exit codes."""
        program = binary(tool, executable)
        cache = self.root / "cache" / f"run{next(_runs)}"
        for directory in (self.home, cache):
            directory.mkdir(parents=True, exist_ok=True)
        full_env = {**clean_env(self.home, cache, program.parent), **(env or {})}
        command = [str(program), *map(str, args)]
        try:
            result = subprocess.run(
                command,
                cwd=cwd or self.root,
                env=full_env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"{' '.join(command)} did not finish within {self.timeout} s\n"
                f"stdout:\n{exc.stdout!r}\nstderr:\n{exc.stderr!r}"
            ) from exc
        self.runs.append(result)
        return result

    def venv(self, name: str = "venv") -> Path:
        """A fresh, empty virtualenv (no pip in it: pip and uv install into it from outside)."""
        path = self.root / name
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return path

    def python(self, venv: Path, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with the virtualenv's interpreter in a clean environment."""
        python = venv / "bin" / "python"
        cache = self.root / "cache" / f"run{next(_runs)}"
        result = subprocess.run(
            [str(python), "-c", code],
            cwd=self.root,
            env=clean_env(self.home, cache, python.parent),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.runs.append(result)
        return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr together: clients disagree on which one carries errors."""
    return f"{result.stdout}\n{result.stderr}"


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """An assertion message: the command, its exit code and everything it printed."""
    command = " ".join(map(str, result.args))
    return (
        f"\n$ {command}\nexit code {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
