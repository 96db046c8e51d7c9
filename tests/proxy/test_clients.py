"""pip and uv installing through a proxy index: cold, warm, and with the upstream gone.

The index has a TTL of 0, so every page request revalidates: the warm run shows
304s upstream and no file fetched again, and the run after the upstream stopped
gets stale pages and files from the tree, and still installs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.tools import Sandbox, describe
from tests.proxy.conftest import MakeProxy, Upstream
from tests.proxy.front import Fault, Front

pytestmark = pytest.mark.clients


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_install_through_the_proxy_cold_warm_and_with_the_upstream_stopped(
    client: str, upstream: Upstream, front: Front, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    sandbox = Sandbox(tmp_path)
    proxy = make_proxy(front.url, ttl=0)
    top, dep = upstream.corpus.installs[client]
    runs = iter(range(3))

    def install() -> None:
        venv = sandbox.venv(f"venv{next(runs)}")
        python = venv / "bin" / "python"
        # pip takes --python before its subcommand, uv after it.
        command = (
            ("--python", python, "install")
            if client == "pip"
            else ("pip", "install", "--python", python)
        )
        result = sandbox.run(
            client,
            *command,
            "--index-url",
            proxy.simple_url,
            f"{client}-top",
        )
        assert result.returncode == 0, describe(result)
        check = sandbox.python(
            venv, f"import {client}_top, {client}_dep; print({client}_dep.__version__)"
        )
        assert check.stdout.strip() == "1.1", describe(check)

    def fetched() -> list[str]:
        return sorted(s.path.rsplit("/", 1)[1] for s in front.requests() if "/packages/" in s.path)

    install()  # cold: pages, core metadata and wheels all come from upstream
    cold = fetched()
    for wheel in (top, dep):
        assert wheel.filename in cold, cold
        assert cold.count(wheel.filename) == 1, cold
    assert all(s.status == 200 for s in front.requests()), front.requests()
    mark = len(front.requests())

    install()  # warm: the pages revalidate (304), every file comes from the tree
    warm = front.requests()[mark:]
    assert warm, "with a TTL of 0 every page is revalidated"
    assert all(s.path.startswith("/simple/") and s.status == 304 for s in warm), warm

    front.stop()
    install()  # the upstream is gone: stale pages, files from the tree
    assert proxy.logged(f"{client}-top: upstream failed"), "served stale"


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_a_corrupt_upstream_file_fails_the_install_and_is_not_cached(
    client: str, upstream: Upstream, front: Front, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    sandbox = Sandbox(tmp_path)
    proxy = make_proxy(front.url)
    bad = upstream.corpus.bad
    front.faults[bad.filename] = Fault("corrupt", seconds=0.5)
    venv = sandbox.venv()
    # Fewer retries than the defaults (each one is another fetch of a bad file):
    # pip resumes an incomplete download with Range requests, which a proxy
    # answers only from a verified file (502 here); uv retries the GET.
    command = (
        ("--python", venv / "bin" / "python", "install", "--retries", "0", "--resume-retries", "1")
        if client == "pip"
        else ("pip", "install", "--python", venv / "bin" / "python")
    )
    result = sandbox.run(
        client,
        *command,
        "--index-url",
        proxy.simple_url,
        "px-bad",
        env={"UV_HTTP_RETRIES": "1"},
    )
    assert result.returncode != 0, describe(result)
    if client == "pip":
        assert "Connection interrupted while downloading" in result.stderr, describe(result)
        assert "incomplete-download" in result.stderr, describe(result)
    else:
        assert "Failed to download `px-bad==1.0`" in result.stderr, describe(result)
    assert not proxy.in_tree(proxy.file_url(bad))
    assert not proxy.blob_stored(bad.sha256)
    assert proxy.logged(f"{bad.filename}: not cached: "), "the proxy caught the bad bytes"
