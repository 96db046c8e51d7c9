"""Real pip downloads from a live ``tilsit serve`` reach the API's numbers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.tools import Sandbox, describe
from tests.conftest import LiveServer
from tests.uploads import upload
from tilsit.index.download_stats import today

pytestmark = pytest.mark.clients


def _wait_for(server: LiveServer, expected: int) -> dict[str, object]:
    """The recent answer once tilsit's batch (every 5 s) has written ``expected``."""
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(f"{server.url}/_/stats/main/stat-me/recent", timeout=30).json()
        if answer["data"]["last_day"] >= expected or time.monotonic() > deadline:
            return answer  # type: ignore[no-any-return]
        time.sleep(0.5)


def test_pip_downloads_and_installs_show_in_recent_and_overall(
    live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    token = server.token()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for dist in (make_wheel("Stat_Me", "1.0"), make_wheel("Stat_Me", "2.0")):
            assert upload(http, dist, token).status_code == 200
    sandbox = Sandbox(tmp_path / "sandbox")
    index = f"{server.url}/simple/"
    result = sandbox.run(
        "pip", "download", "--no-deps", "--index-url", index, "-d", "d1", "stat-me"
    )
    assert result.returncode == 0, describe(result)
    # The older release as well, from the same address: another file, another count.
    result = sandbox.run(
        "pip", "download", "--no-deps", "--index-url", index, "-d", "d2", "stat-me==1.0"
    )
    assert result.returncode == 0, describe(result)
    venv = sandbox.venv()
    result = sandbox.run(
        "pip", "--python", venv / "bin" / "python", "install", "--index-url", index, "stat-me"
    )
    assert result.returncode == 0, describe(result)  # 2.0's wheel again: same client, same day
    recent = _wait_for(server, 2)
    assert recent == {
        "data": {"last_day": 2, "last_week": 2, "last_month": 2},
        "package": "stat-me",
        "type": "recent_downloads",
    }
    overall = httpx.get(f"{server.url}/_/stats/main/Stat_Me/overall", timeout=30).json()
    day = today().isoformat()
    assert overall == {
        "data": [
            {"category": "with_mirrors", "date": day, "downloads": 2},
            {"category": "without_mirrors", "date": day, "downloads": 2},
        ],
        "package": "stat-me",
        "type": "overall_downloads",
    }
