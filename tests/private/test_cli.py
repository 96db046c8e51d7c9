"""``tilsit index create --private``, ``index set|grant|revoke|permissions`` and ``role …``."""

from __future__ import annotations

from tests.builders import make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.config import Settings
from tilsit.instance import Instance


def test_index_access_commands(settings: Settings, instance: Instance) -> None:
    run_cli(settings, "user", "create", "bob")
    created = run_cli(settings, "index", "create", "sec", "--private", "--create-policy", "listed")
    assert "created hosted index 'sec'" in created.stdout
    assert (settings.tree_dir / "sec" / ".private").exists()
    assert run_cli(settings, "index", "grant", "sec", "bob", "read").returncode == 0
    again = run_cli(settings, "index", "grant", "sec", "bob", "read")
    assert "nothing changed" in again.stdout
    listing = run_cli(settings, "index", "permissions", "sec").stdout
    assert "index sec: private, create policy listed" in listing
    assert "bob\tread" in listing
    bad = run_cli(settings, "index", "grant", "sec", "bob", "admin", check=False)
    assert bad.returncode == 2 and "admin" in bad.stderr
    nobody = run_cli(settings, "index", "grant", "sec", "nobody", "read", check=False)
    assert nobody.returncode == 1 and "no user named 'nobody'" in nobody.stderr
    assert run_cli(settings, "index", "revoke", "sec", "bob", "read").returncode == 0
    assert "bob" not in run_cli(settings, "index", "permissions", "sec").stdout
    public = run_cli(settings, "index", "set", "sec", "--public", "--create-policy", "anyone")
    assert "index 'sec' is public, create policy anyone" in public.stdout
    assert not (settings.tree_dir / "sec" / ".private").exists()
    nothing = run_cli(settings, "index", "set", "sec", check=False)
    assert nothing.returncode == 2 and "nothing to set" in nothing.stderr


def test_private_proxy_is_refused(settings: Settings, instance: Instance) -> None:
    result = run_cli(
        settings,
        "index",
        "create",
        "px",
        "--proxy",
        "http://127.0.0.1:9/simple/",
        "--private",
        check=False,
    )
    assert result.returncode == 1 and "cannot be private" in result.stderr


def test_role_commands(
    settings: Settings, instance: Instance, client: AppClient, token: str
) -> None:
    response = upload(client, make_wheel("roled", "1.0"), token)
    assert response.status_code == 200, response.text
    run_cli(settings, "user", "create", "bob")
    assert "alice\tOwner" in run_cli(settings, "role", "list", "roled").stdout
    added = run_cli(settings, "role", "add", "roled", "bob", "maintainer")
    assert "'bob' is now Maintainer of 'roled'" in added.stdout
    twice = run_cli(settings, "role", "add", "roled", "bob", "Owner", check=False)
    assert twice.returncode == 1 and "already Maintainer" in twice.stderr
    last = run_cli(settings, "role", "remove", "roled", "alice", check=False)
    assert last.returncode == 1 and "last Owner" in last.stderr
    assert run_cli(settings, "role", "remove", "roled", "bob").returncode == 0
    assert run_cli(settings, "role", "list", "roled").stdout.split() == ["alice", "Owner"]
    missing = run_cli(settings, "role", "list", "nothing", check=False)
    assert missing.returncode == 1 and "no project 'nothing'" in missing.stderr


def test_private_implies_the_listed_create_policy(settings: Settings, instance: Instance) -> None:
    created = run_cli(settings, "index", "create", "sec", "--private")
    assert "(private, create policy listed)" in created.stdout
    assert (
        "private, create policy listed" in run_cli(settings, "index", "permissions", "sec").stdout
    )
    stated = run_cli(settings, "index", "create", "open", "--private", "--create-policy", "anyone")
    assert "(private, create policy anyone)" in stated.stdout
    public = run_cli(settings, "index", "create", "pub")
    assert "(public, create policy anyone)" in public.stdout
    assert "public, create policy anyone" in run_cli(settings, "index", "permissions", "pub").stdout
    # Made private later, an index keeps its create policy, with a warning when it is anyone.
    made = run_cli(settings, "index", "set", "pub", "--private")
    assert "index 'pub' is private, create policy anyone" in made.stdout
    assert "warning: any user may still create projects" in made.stderr
    assert "--create-policy listed" in made.stderr
    quiet = run_cli(settings, "index", "set", "pub", "--create-policy", "listed")
    assert "private, create policy listed" in quiet.stdout and quiet.stderr == ""
