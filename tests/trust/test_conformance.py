"""tuf-conformance's static-repository test, replayed here over ``tilsit tuf export-static``.

The upstream suite (theupdateframework/tuf-conformance) cannot be installed on
this machine: it is not on PyPI and GitHub is unreachable. Its
``test_static_repository`` is small, so this module replays it: for an exported
``static_data/<name>/`` directory served by ``python -m http.server``, a client
implementing the suite's client-under-test CLI runs ``init initial_root.json``,
then ``refresh`` under ``faketime "<faketime file>"``, then ``download`` of the
path in ``targetpath``; all three must exit 0. It runs with two CLI wrappers:
python-tuf's ngclient (tests/trust/conformance_cli.py) and tuf-js
(tests/trust/js/conformance-client.js). The exported directory has the form the
suite's static_data expects, so it can be contributed upstream as is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need, run_cli, start_server, stop
from tests.trust.signed import INDEX, Signed, http_server, signed_tree
from tests.trust.test_tufjs import tufjs_ready
from tilsit.config import Settings

HERE = Path(__file__).parent


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Iterator[Signed]:
    server = start_server(settings, tmp_path / "server.log")
    try:
        yield signed_tree(server)
    finally:
        stop(server)


def ngclient_cli() -> list[str]:
    return [sys.executable, str(HERE / "conformance_cli.py")]


def tufjs_cli() -> list[str]:
    return ["node", str(tufjs_ready() / "conformance-client.js")]


def static_test(
    client: list[str], exported: Path, work: Path, *, shift: str | None = None
) -> list[int]:
    """init, refresh under faketime, download: the three exit codes."""
    metadata_dir = work / "metadata"
    targetpath = (exported / "targetpath").read_text().strip()
    moment = (exported / "faketime").read_text().strip()
    clock = ["faketime", moment] if shift is None else ["faketime", "-f", shift]
    codes = []
    with http_server(exported) as url:
        steps = [
            [*client, "--metadata-dir", str(metadata_dir), "init", str(exported / "initial_root.json")],
            [*clock, *client, "--metadata-dir", str(metadata_dir), "--metadata-url", f"{url}/metadata", "refresh"],
            [*client, "--metadata-dir", str(metadata_dir), "--metadata-url", f"{url}/metadata",
             "--target-name", targetpath, "--target-base-url", f"{url}/targets", "--target-dir", str(work / "dl"),
             "download"],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, timeout=120, check=False)
            codes.append(result.returncode)
            if result.returncode != 0:
                print(step, result.stdout, result.stderr)
    return codes


@pytest.mark.parametrize("client", ["ngclient", "tuf-js"])
def test_static_repository(client: str, signed: Signed, tmp_path: Path) -> None:
    need(shutil.which("faketime") is not None, "faketime")
    command = ngclient_cli() if client == "ngclient" else tufjs_cli()
    exported = tmp_path / "static_data" / "tilsit"
    run_cli(signed.server.settings, "tuf", "export-static", str(exported), "--index", INDEX)
    for name in (
        "metadata/1.root.json",
        "metadata/timestamp.json",
        "initial_root.json",
        "targetpath",
        "faketime",
    ):
        assert (exported / name).is_file(), name
    targetpath = (exported / "targetpath").read_text().strip()
    # A distribution (which one depends on what other tests of the module
    # uploaded), present in the export under its hashed name.
    assert targetpath.startswith("packages/") and targetpath.endswith((".whl", ".tar.gz"))
    folder, _, name = targetpath.rpartition("/")
    assert list((exported / "targets" / folder).glob(f"*.{name}")), targetpath
    assert static_test(command, exported, tmp_path / "run") == [0, 0, 0]
    # The same steps with the clock a year on fail at refresh: the test can fail.
    later = static_test(command, exported, tmp_path / "later", shift="+400d")
    assert later[:2] == [0, 1]


def test_export_refuses_an_unknown_index_and_a_full_directory(
    signed: Signed, tmp_path: Path
) -> None:
    nothing = run_cli(
        signed.server.settings,
        "tuf",
        "export-static",
        str(tmp_path / "x"),
        "--index",
        "nope",
        check=False,
    )
    assert nothing.returncode == 2 and "has no signed tree" in nothing.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    busy = run_cli(
        signed.server.settings, "tuf", "export-static", str(full), "--index", INDEX, check=False
    )
    assert busy.returncode == 2 and "is not empty" in busy.stderr
    assert (full / "keep").read_text() == "x"
