"""Policies applied where a virtual index's pages render (in-process, injected clock).

A hidden file is in no page, JSON, legacy JSON, link or TUF target of the virtual
index; a file leaves a cool-down on schedule through the maturing job, with no
request; exemptions, vulnerability data and malware records act as documented.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.builders import make_wheel
from tests.virtual.conftest import filenames, page
from tests.vulns.records import export, write_zip
from tilsit.cooldowns import mature_once
from tilsit.index.manage import get_index
from tilsit.index.policies import add_exemption, set_policy
from tilsit.index.policy_doc import parse_policy
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.index.vulns import import_osv
from tilsit.instance import Instance

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_HASHED = re.compile(r"^[0-9a-f]{64}[.]")


def _file(instance: Instance, name: str, version: str, uploaded: datetime | None) -> UpstreamFile:
    wheel = make_wheel(name, version)
    instance.blobs.put_bytes(wheel.data)
    return UpstreamFile(
        filename=wheel.filename,
        url=f"https://upstream.invalid/files/{wheel.filename}",
        sha256=wheel.sha256,
        size=len(wheel.data),
        upload_time=uploaded,
    )


def _mirror(instance: Instance, name: str, serial: int, *files: UpstreamFile) -> None:
    versions = sorted({f.filename.split("-")[1] for f in files})
    with instance.db.write() as session:
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            UpstreamProject(name, serial, list(files), versions=versions),
            stored=set(instance.blobs),
        )
    instance.renderer.catch_up()


def _policy(instance: Instance, text: str) -> None:
    with instance.db.write() as session:
        set_policy(session, get_index(session, "all"), parse_policy(text, "test.toml"), text, "t")
    instance.renderer.catch_up()


def _everywhere(instance: Instance, filename: str) -> list[str]:
    """Where the virtual index ``all`` still shows ``filename``: its pages, legacy JSON,
    file links and the current version of each TUF role. What TUF keeps for clients
    in the middle of an update (hashed names, older role versions) goes at the sweep."""
    tree = instance.settings.tree_dir / "all"
    latest: dict[str, tuple[int, Path]] = {}
    for path in (tree / "tuf").glob("*.json"):
        number, _, role = path.name.partition(".")
        if number.isdigit() and int(number) > latest.get(role, (-1, path))[0]:
            latest[role] = (int(number), path)
    current = {path for _n, path in latest.values()}
    found = []
    for path in tree.rglob("*"):
        if not path.is_file() or _HASHED.match(path.name):
            continue
        if path.parent.name == "tuf" and path not in current:
            continue
        text = path.suffix in (".json", ".html") or path.name == "json"
        if filename in path.name or (text and filename in path.read_text(errors="replace")):
            found.append(str(path.relative_to(tree)))
    return sorted(found)


def test_a_cooling_file_is_nowhere_and_comes_out_on_schedule(stack: Instance) -> None:
    stack.renderer.clock = lambda: NOW
    old = _file(stack, "cool-pkg", "1.0", NOW - timedelta(days=8))
    young = _file(stack, "cool-pkg", "2.0", NOW - timedelta(days=7) + timedelta(hours=1))
    _mirror(stack, "cool-pkg", 3, old, young)
    assert filenames(page(stack, "all", "cool-pkg")) == [old.filename, young.filename]
    _policy(stack, 'cooldown = { duration = "7 days" }')
    doc = page(stack, "all", "cool-pkg")
    assert filenames(doc) == [old.filename]
    assert doc is not None and doc["versions"] == ["1.0"]
    assert _everywhere(stack, young.filename) == []  # pages, legacy JSON, links, TUF targets
    assert _everywhere(stack, old.filename) != []
    # The mirror itself is not filtered.
    assert filenames(page(stack, "mir", "cool-pkg")) == [old.filename, young.filename]

    # The job's first tick looks one window back (the old file came of age in it);
    # then nothing matures before its time, and an hour later it lets the young one out.
    mature_once(stack, NOW)
    assert mature_once(stack, NOW + timedelta(minutes=30)) == 0
    assert filenames(page(stack, "all", "cool-pkg")) == [old.filename]
    later = NOW + timedelta(hours=2)
    stack.renderer.clock = lambda: later
    assert mature_once(stack, later) == 1
    assert filenames(page(stack, "all", "cool-pkg")) == [old.filename, young.filename]
    assert mature_once(stack, later) == 0  # the mark moved: no window twice


def test_an_exemption_lets_a_young_file_through_until_it_expires(stack: Instance) -> None:
    stack.renderer.clock = lambda: NOW
    young = _file(stack, "hot-fix", "1.0", NOW - timedelta(hours=1))
    _mirror(stack, "hot-fix", 3, young)
    _policy(stack, 'cooldown = { duration = "7 days" }')
    assert page(stack, "all", "hot-fix") is None  # nothing to offer: a 404
    mature_once(stack, NOW)  # the job's first tick sets its mark
    with stack.db.write() as session:
        add_exemption(
            session,
            get_index(session, "all"),
            "hot-fix",
            "1.0",
            NOW + timedelta(hours=3),
            "urgent fix",
            "t",
            now=NOW,
        )
    stack.renderer.catch_up()
    assert filenames(page(stack, "all", "hot-fix")) == [young.filename]
    after = NOW + timedelta(hours=4)
    stack.renderer.clock = lambda: after
    assert mature_once(stack, after) == 1
    assert page(stack, "all", "hot-fix") is None


def test_vulnerable_versions_hidden_or_warned_and_malware_quarantined(
    stack: Instance, tmp_path: Path
) -> None:
    stack.renderer.clock = lambda: NOW
    old = NOW - timedelta(days=30)
    files = [_file(stack, "vuln-pkg", v, old) for v in ("1.0", "1.2", "1.4")]
    _mirror(stack, "vuln-pkg", 3, *files)
    evil = _file(stack, "evil-pkg", "0.1", old)
    _mirror(stack, "evil-pkg", 4, evil)
    with stack.db.write() as session:
        import_osv(session, write_zip(tmp_path / "all.zip", export()), "t")
    stack.renderer.catch_up()

    # Malware is hidden whatever the policy says; the project is quarantined (PEP 792).
    doc = page(stack, "all", "evil-pkg")
    assert doc is not None and doc["files"] == [] and doc["versions"] == []
    assert doc["project-status"]["status"] == "quarantined"
    assert "MAL-2024-2873" in doc["project-status"]["reason"]
    html = (stack.settings.tree_dir / "all/simple/evil-pkg/index.html").read_text()
    assert '<meta name="pypi:project-status" content="quarantined">' in html

    # off (the default): every version; hide: the affected ones (<1.2 and 1.1-1.3).
    assert filenames(page(stack, "all", "vuln-pkg")) == sorted(f.filename for f in files)
    _policy(stack, 'vulnerabilities = { action = "hide" }')
    assert filenames(page(stack, "all", "vuln-pkg")) == [files[2].filename]
    legacy = json.loads((stack.settings.tree_dir / "all/pypi/vuln-pkg/json").read_bytes())
    assert set(legacy["releases"]) == {"1.4"}
    # Only PYSEC records (by id or alias): the GHSA one (1.1-1.3) no longer hides 1.2.
    _policy(stack, 'vulnerabilities = { action = "hide", ids = ["PYSEC-"] }')
    assert filenames(page(stack, "all", "vuln-pkg")) == [files[1].filename, files[2].filename]
    _policy(stack, 'vulnerabilities = { action = "warn" }')
    assert filenames(page(stack, "all", "vuln-pkg")) == sorted(f.filename for f in files)


def test_deny_rules_hide_by_requirement_kind_and_prerelease(stack: Instance) -> None:
    stack.renderer.clock = lambda: NOW
    old = NOW - timedelta(days=30)
    files = [_file(stack, "urllib4", v, old) for v in ("1.9", "2.0", "2.1rc1")]
    _mirror(stack, "urllib4", 3, *files)
    _policy(stack, 'deny = { requirements = ["urllib4<2"], prereleases = true }')
    assert filenames(page(stack, "all", "urllib4")) == [files[1].filename]


def test_hosted_files_never_cool_down(stack: Instance, client: object, token: str) -> None:
    from tests.conftest import AppClient
    from tests.virtual.conftest import post

    assert isinstance(client, AppClient)
    _policy(stack, 'cooldown = { duration = "7 days" }')
    wheel = make_wheel("fresh-internal", "1.0")
    post(client, token, wheel)
    assert filenames(page(stack, "all", "fresh-internal")) == [wheel.filename]


def test_allowed_licences_are_read_from_the_core_metadata(stack: Instance) -> None:
    import hashlib

    stack.renderer.clock = lambda: NOW
    old = NOW - timedelta(days=30)
    files = []
    for version, licence in (("1.0", "MIT"), ("2.0", "GPL-3.0-only"), ("3.0", None)):
        wheel = make_wheel("licensed", version)
        head = f"Metadata-Version: 2.4\nName: licensed\nVersion: {version}\n"
        metadata = (head + (f"License-Expression: {licence}\n" if licence else "") + "\n").encode()
        stack.blobs.put_bytes(wheel.data)
        stack.blobs.put_bytes(metadata)
        files.append(
            UpstreamFile(
                filename=wheel.filename,
                url=f"https://upstream.invalid/files/{wheel.filename}",
                sha256=wheel.sha256,
                size=len(wheel.data),
                upload_time=old,
                metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            )
        )
    _mirror(stack, "licensed", 3, *files)
    _policy(stack, 'allow = { licenses = ["MIT", "Apache-2.0"] }')
    # GPL is not allowed; a release that states no expression is hidden while the rule is set.
    assert filenames(page(stack, "all", "licensed")) == [files[0].filename]
