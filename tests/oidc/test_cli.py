"""``tilsit publisher add|list|remove``."""

from __future__ import annotations

from tests.conftest import run_cli
from tilsit.config import Settings
from tilsit.instance import Instance


def test_publisher_add_list_remove(settings: Settings, instance: Instance) -> None:
    run_cli(settings, "user", "create", "carol")
    added = run_cli(
        settings,
        "publisher",
        "add",
        "future-pkg",
        "--pending",
        "--user",
        "carol",
        "--kind",
        "github",
        "--repository",
        "octo-org/octo-repo",
        "--workflow",
        "release.yml",
        "--environment",
        "pypi",
    )
    assert "publisher 1: GitHub octo-org/octo-repo, workflow release.yml" in added.stdout
    listed = run_cli(settings, "publisher", "list").stdout
    assert "future-pkg (pending)" in listed and "environment pypi" in listed
    generic = run_cli(
        settings,
        "publisher",
        "add",
        "other",
        "--pending",
        "--user",
        "carol",
        "--kind",
        "oidc",
        "--issuer",
        "https://ci.example.org",
        "--claim",
        "sub=repo:team/other",
    )
    assert "OIDC issuer https://ci.example.org, sub=repo:team/other" in generic.stdout
    refused = run_cli(
        settings,
        "publisher",
        "add",
        "other",
        "--pending",
        "--user",
        "carol",
        "--kind",
        "oidc",
        "--issuer",
        "http://ci.example.org",
        "--claim",
        "sub=x",
        check=False,
    )
    assert refused.returncode != 0 and "https://" in refused.stderr
    no_claims = run_cli(
        settings,
        "publisher",
        "add",
        "other",
        "--pending",
        "--user",
        "carol",
        "--kind",
        "oidc",
        "--issuer",
        "https://ci.example.org",
        check=False,
    )
    assert no_claims.returncode != 0 and "at least one claim" in no_claims.stderr
    assert "removed publisher 1" in run_cli(settings, "publisher", "remove", "1").stdout
    assert "future-pkg" not in run_cli(settings, "publisher", "list").stdout
