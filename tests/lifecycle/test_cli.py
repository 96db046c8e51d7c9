"""Index lifecycle from the command line, run as an operator runs it (a subprocess).

``index create --private`` and ``index list`` say what an index is; ``index set``
changes a mirror's or proxy's upstream settings through the validator ``index
create`` uses; ``index delete`` is confirmed, audited and soft.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tests.conftest import run_cli, settings_env
from tilsit.config import Settings
from tilsit.db.live import with_deleted
from tilsit.db.models import AuditEventRow, IndexRow, UpstreamStateRow
from tilsit.instance import open_instance


def _piped(settings: Settings, stdin: str, *args: str, code: int = 0) -> str:
    """``tilsit ARGS`` with ``stdin`` as its input (a prompt's answer, a password)."""
    result = subprocess.run(
        [sys.executable, "-m", "tilsit", *args, "--data", str(settings.data)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **settings_env(settings)},
        timeout=120,
        check=False,
    )
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def _options(settings: Settings, name: str) -> dict[str, object]:
    instance = open_instance(settings)
    try:
        with instance.db.read() as session:
            row = session.scalars(
                select(IndexRow).where(IndexRow.name == name).execution_options(**with_deleted())
            ).one()
            return dict(row.options)
    finally:
        instance.close()


def _audit(settings: Settings, action: str) -> list[AuditEventRow]:
    instance = open_instance(settings)
    try:
        with instance.db.read() as session:
            return list(
                session.scalars(select(AuditEventRow).where(AuditEventRow.action == action))
            )
    finally:
        instance.close()


def test_create_and_list_say_access_kind_and_upstream_without_credentials(
    settings: Settings,
) -> None:
    created = run_cli(settings, "index", "create", "team", "--private").stdout
    assert "created hosted index 'team'" in created and "(private," in created
    proxy = run_cli(
        settings, "index", "create", "px", "--proxy", "https://bob:s3cret@up.example:8443/simple"
    ).stdout
    assert "of https://up.example:8443/simple/ (public," in proxy
    assert "s3cret" not in proxy
    listing = run_cli(settings, "index", "list").stdout
    assert "s3cret" not in listing and "bob" not in listing
    assert re.search(r"^main\thosted\tpublic\tserial \d+ \(default\)$", listing, re.M), listing
    assert re.search(r"^team\thosted\tprivate\tserial \d+$", listing, re.M), listing
    assert re.search(
        r"^px\tproxy\tpublic\tserial \d+\thttps://up\.example:8443/simple/$", listing, re.M
    ), listing


def test_set_changes_upstream_settings_through_the_create_validator(
    settings: Settings, tmp_path: Path
) -> None:
    run_cli(settings, "index", "create", "m", "--mirror", "http://127.0.0.1:9/simple/")
    changed = run_cli(
        settings,
        "index",
        "set",
        "m",
        "--upstream-username",
        "bob",
        "--upstream-password",
        "s3cret-1",
        "--interval",
        "1h",
    )
    assert "s3cret" not in changed.stdout + changed.stderr
    assert "changed: auth, interval" in changed.stdout
    options = _options(settings, "m")
    # Stored as `index create` stores them.
    assert options["auth"] == {"username": "bob", "password": "s3cret-1"}
    assert options["interval"] == 3600
    events = _audit(settings, "index.changed")
    assert [e.detail["changed"] for e in events] == [["auth", "interval"]]
    assert "s3cret" not in repr([e.detail for e in events])

    # The same refusal, in the same words, from create and from set; nothing changes.
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    for bad, words in [
        (["--ca-bundle", str(tmp_path / "missing.pem")], "is not a file"),
        (["--ca-bundle", str(not_pem)], "holds no usable PEM certificate"),
        (["--interval", "soon"], "is not a duration"),
        (["--ttl", "60"], "ttl applies to proxy indexes"),
    ]:
        on_set = run_cli(settings, "index", "set", "m", *bad, check=False)
        on_create = run_cli(
            settings, "index", "create", "m2", "--mirror", "http://127.0.0.1:9/", *bad, check=False
        )
        assert on_set.returncode == on_create.returncode == 1, (on_set, on_create)
        assert words in on_set.stderr and words in on_create.stderr, (on_set, on_create)
        assert "Traceback" not in on_set.stderr + on_create.stderr
    refused = run_cli(settings, "index", "set", "m", "--upstream", "ftp://x/", check=False)
    assert refused.returncode == 1 and "needs an upstream http(s) URL" in refused.stderr
    hosted = run_cli(settings, "index", "set", "main", "--interval", "1h", check=False)
    assert hosted.returncode == 1 and "a hosted index has no upstream" in hosted.stderr
    assert _options(settings, "m") == options

    # Credentials from stdin; a new password keeps the user name; --no-upstream-auth drops both.
    piped = _piped(settings, "s3cret-2\n", "index", "set", "m", "--upstream-password-stdin")
    assert "s3cret" not in piped
    assert _options(settings, "m")["auth"] == {"username": "bob", "password": "s3cret-2"}
    run_cli(settings, "index", "set", "m", "--no-upstream-auth", "--interval", "0")
    options = _options(settings, "m")
    assert "auth" not in options and "interval" not in options


def test_new_mirror_upstream_resets_its_sync_state(settings: Settings) -> None:
    run_cli(settings, "index", "create", "m", "--mirror", "http://127.0.0.1:9/simple/")
    instance = open_instance(settings)
    try:
        with instance.db.write() as session:
            index = session.scalars(select(IndexRow).where(IndexRow.name == "m")).one()
            session.add(
                UpstreamStateRow(
                    index_id=index.id, upstream_serial=40, synced_serial=40, root_etag='"x"'
                )
            )
    finally:
        instance.close()
    run_cli(settings, "index", "set", "m", "--upstream", "http://127.0.0.1:10/simple")
    assert _options(settings, "m")["upstream"] == "http://127.0.0.1:10/simple/"
    instance = open_instance(settings)
    try:
        with instance.db.read() as session:
            index = session.scalars(select(IndexRow).where(IndexRow.name == "m")).one()
            state = session.get_one(UpstreamStateRow, index.id)
            assert (state.upstream_serial, state.synced_serial, state.root_etag) == (None,) * 3
    finally:
        instance.close()
    events = _audit(settings, "index.changed")
    assert events[-1].detail == {"changed": ["upstream"], "upstream": "http://127.0.0.1:10/simple/"}


def test_delete_is_confirmed_audited_soft_and_keeps_the_name(settings: Settings) -> None:
    run_cli(settings, "index", "create", "old", "--proxy", "http://127.0.0.1:9/simple/")
    default = run_cli(settings, "index", "delete", "main", "--yes", check=False)
    assert default.returncode == 1 and "default index" in default.stderr
    wrong = _piped(settings, "olde\n", "index", "delete", "old", code=1)
    assert "nothing deleted" in wrong
    assert re.search(r"^old\t", run_cli(settings, "index", "list").stdout, re.M)

    typed = _piped(settings, "old\n", "index", "delete", "old")
    assert "deleted proxy index 'old'" in typed
    assert not re.search(r"^old\t", run_cli(settings, "index", "list").stdout, re.M)
    [event] = _audit(settings, "index.deleted")
    assert event.actor == "cli" and event.detail == {"name": "old", "kind": "proxy"}
    # The audit log is history: it still names the deleted index.
    exported = run_cli(settings, "audit", "export", "--index", "old").stdout
    assert '"index.deleted"' in exported and '"index": "old"' in exported, exported
    # Every lookup by name finds nothing now, the CLI's included.
    gone = run_cli(settings, "index", "permissions", "old", check=False)
    assert gone.returncode == 1 and "no index named 'old'" in gone.stderr
    again = run_cli(settings, "index", "delete", "old", "--yes", check=False)
    assert again.returncode == 1 and "no index named 'old'" in again.stderr
    # Its rows stay, so its name stays taken.
    reuse = run_cli(settings, "index", "create", "old", check=False)
    assert reuse.returncode == 1 and "stays taken" in reuse.stderr
    assert _options(settings, "old")["upstream"] == "http://127.0.0.1:9/simple/"
