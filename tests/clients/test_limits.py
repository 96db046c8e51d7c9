"""Limits users hit, through real twine and uv: the project-creation limit names its
setting; administrators and bulk tokens load a whole dependency closure; uploads need a
confirmed email address.

One live server for the module, with ``project_create_rate`` at 2 per hour and the email
rule on; each test uses users and projects of its own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from tests.builders import make_wheel
from tests.clients.conftest import Served
from tests.clients.tools import Sandbox, describe, output
from tests.conftest import create_database, start_server
from tilsit.auth.tokens import create_token
from tilsit.config import load_settings
from tilsit.db.engine import Database
from tilsit.db.models import UserRow
from tilsit.index.manage import create_user

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def limited(
    postgres_base: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("limited")
    settings = load_settings(
        overrides={
            "data": root / "data",
            "database_url": create_database(postgres_base),
        },
        environ={},
    )
    log = root / "server.log"
    limits = {
        "TILSIT_PROJECT_CREATE_RATE": "2/1h",
        "TILSIT_REQUIRE_VERIFIED_EMAIL_FOR_UPLOAD": "on",
    }
    live = start_server(settings, log, env=limits)
    yield Served(live, log)
    live.process.terminate()
    try:
        live.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        live.process.kill()


def _closure(root: Path, prefix: str, count: int) -> Path:
    """A directory of wheels as `pip download -d DIR -r requirements.txt` leaves it."""
    directory = root / f"closure-{prefix}"
    directory.mkdir()
    for number in range(count):
        make_wheel(f"{prefix}-dep{number}", "1.0").write(directory)
    return directory


def _twine(
    sandbox: Sandbox, served: Served, token: str, *paths: Path
) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        served.upload_url,
        "-u",
        "__token__",
        "-p",
        token,
        # twine refuses --skip-existing for indexes other than PyPI; none is needed, as an
        # identical re-upload is answered 200 ("already stored").
        *paths,
    )


def _uv(
    sandbox: Sandbox, served: Served, token: str, *paths: Path
) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "uv",
        "publish",
        "--publish-url",
        served.upload_url,
        "--trusted-publishing",
        "never",
        "--token",
        token,
        "--check-url",
        served.simple_url,
        *paths,
    )


def _user(served: Served, name: str, *options: str) -> None:
    """A user made by the operator; ``--email`` makes it a confirmed address."""
    served.cli("user", "create", name, *options)


def _cli_token(served: Served, name: str, *options: str) -> str:
    return served.cli("token", "create", "--user", name, *options).stdout.strip()


def _stored(served: Served, prefix: str, count: int) -> list[bool]:
    return [bool(served.files(f"{prefix}-dep{n}")) for n in range(count)]


def test_the_project_limit_names_its_setting_and_a_bulk_token_loads_the_closure(
    limited: Served, sandbox: Sandbox
) -> None:
    _user(limited, "loader", "--email", "loader@example.test")
    closure = _closure(sandbox.root, "twn", 5)
    wheels = sorted(closure.iterdir())

    plain = _twine(sandbox, limited, _cli_token(limited, "loader"), *wheels)
    assert plain.returncode != 0, describe(plain)
    said = " ".join(output(plain).split())  # twine wraps its lines
    assert "429" in said and "project_create_rate" in said, describe(plain)
    assert "administrators and bulk tokens are exempt" in said, describe(plain)
    assert "tilsit token create --bulk" in said, describe(plain)
    assert _stored(limited, "twn", 5) == [True, True, False, False, False]

    # The documented way: a bulk token, granted by the operator; the two stored already
    # are answered "already stored", so the whole directory is uploaded again.
    bulk = _cli_token(limited, "loader", "--bulk", "--description", "closure load")
    loaded = _twine(sandbox, limited, bulk, *wheels)
    assert loaded.returncode == 0, describe(loaded)
    assert _stored(limited, "twn", 5) == [True] * 5
    listed = limited.cli("token", "list", "--user", "loader").stdout.splitlines()
    assert listed[0].split("\t")[3] == "bulk"
    assert sorted(line.split("\t")[3] for line in listed[1:]) == ["-", "bulk"]
    created = [
        json.loads(line)
        for line in limited.cli("audit", "export", "--action", "token.created").stdout.splitlines()
    ]
    assert [event["detail"]["bulk"] for event in created if event["user"] == "loader"] == [
        False,
        True,
    ]


def test_a_bulk_token_loads_a_closure_with_uv(limited: Served, sandbox: Sandbox) -> None:
    _user(limited, "uvloader", "--email", "uvloader@example.test")
    wheels = sorted(_closure(sandbox.root, "uvc", 4).iterdir())
    refused = _uv(sandbox, limited, _cli_token(limited, "uvloader"), *wheels)
    assert refused.returncode != 0, describe(refused)
    assert "project_create_rate" in output(refused), describe(refused)
    loaded = _uv(sandbox, limited, _cli_token(limited, "uvloader", "--bulk"), *wheels)
    assert loaded.returncode == 0, describe(loaded)
    assert _stored(limited, "uvc", 4) == [True] * 4


def test_administrators_are_exempt_from_the_project_limit(
    limited: Served, sandbox: Sandbox
) -> None:
    _user(limited, "operator", "--admin")
    wheels = sorted(_closure(sandbox.root, "adm", 4).iterdir())
    loaded = _twine(sandbox, limited, _cli_token(limited, "operator"), *wheels)
    assert loaded.returncode == 0, describe(loaded)
    assert _stored(limited, "adm", 4) == [True] * 4


def _confirm(served: Served, name: str, email: str | None) -> None:
    db = Database(served.live.settings.db_url)
    try:
        with db.write() as session:
            row = session.scalars(sqlalchemy.select(UserRow).where(UserRow.name == name)).one()
            row.email = email or row.email
            row.email_verified_at = datetime.now(UTC)
    finally:
        db.dispose()


def _unconfirmed(served: Served, name: str, email: str | None) -> str:
    """A self-registered user whose address was never confirmed, and a token of theirs."""
    db = Database(served.live.settings.db_url)
    try:
        with db.write() as session:
            row = create_user(session, name)
            row.email = email
            return create_token(session, row).secret
    finally:
        db.dispose()


@pytest.mark.parametrize("client", ["twine", "uv"])
def test_an_upload_needs_a_confirmed_email_address(
    limited: Served, sandbox: Sandbox, client: str
) -> None:
    name = f"newcomer-{client}"
    token = _unconfirmed(limited, name, f"{name}@example.test")
    wheel = make_wheel(f"first-{client}", "1.0").write(sandbox.root)
    publish = _twine if client == "twine" else _uv
    refused = publish(sandbox, limited, token, wheel)
    assert refused.returncode != 0, describe(refused)
    said = " ".join(output(refused).split())
    assert "403" in said and "confirmed email address" in said and "/account/" in said, describe(
        refused
    )
    assert not limited.files(f"first-{client}")
    _confirm(limited, name, None)
    accepted = publish(sandbox, limited, token, wheel)
    assert accepted.returncode == 0, describe(accepted)
    assert limited.files(f"first-{client}")
