"""The policy document: every key parsed and normalised, every problem named by its
source and key path, and a canonical JSON and TOML form that reads back unchanged."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from tilsit.index.policy_doc import (
    InvalidPolicy,
    NamePattern,
    PolicyDoc,
    parse_policy,
)
from tilsit.spec.filenames import PACKAGE_TYPES, classify_mirrored

FULL = """
cooldown = { duration = "36 hours" }
vulnerabilities = { action = "hide", ids = ["GHSA-", "PYSEC-"], min_severity = "medium" }
allow = { names = [], requirements = ["Django >= 4.2"], licenses = ["mit", "Apache-2.0"] }
deny = { names = ["Evil_Corp", "Acme_*"], requirements = ["urllib3<2", "Requests>=2,<2.31"], statuses = ["archived"], prereleases = true, yanked = true, kinds = ["bdist_egg"] }
curated = { enabled = true }
"""


def test_every_key_is_read_and_normalised() -> None:
    doc = parse_policy(FULL, "all.toml")
    assert doc.cooldown is not None and doc.cooldown.duration == timedelta(hours=36)
    assert doc.vulnerabilities.action == "hide"
    assert doc.vulnerabilities.ids == ("GHSA-", "PYSEC-")
    assert doc.vulnerabilities.min_severity == "MODERATE"
    assert [r.text for r in doc.allow.requirements] == ["django>=4.2"]
    assert doc.allow.licenses == ("MIT", "Apache-2.0")
    assert [n.text for n in doc.deny.names] == ["evil-corp", "acme-*"]
    assert [r.text for r in doc.deny.requirements] == ["urllib3<2", "requests<2.31,>=2"]
    assert doc.deny.requirements[1].name == "requests"
    assert doc.deny.statuses == ("archived",)
    assert doc.deny.prereleases and doc.deny.yanked
    assert doc.deny.kinds == ("bdist_egg",)
    assert doc.curated.enabled


def test_an_empty_document_hides_nothing() -> None:
    doc = parse_policy("", "empty.toml")
    assert doc == PolicyDoc()
    assert doc.cooldown is None and doc.vulnerabilities.action == "off"


def test_canonical_json_and_toml_round_trip() -> None:
    doc = parse_policy(FULL, "all.toml")
    stored = doc.to_json()
    assert stored["cooldown"] == {"duration": "1 day 12 hours"}
    assert stored["deny"]["names"] == ["evil-corp", "acme-*"]
    assert PolicyDoc.from_json(stored) == doc
    assert parse_policy(doc.to_toml(), "shown.toml") == doc
    # Canonical: the same meaning, spelled otherwise, stores the same document.
    respelled = FULL.replace('"36 hours"', '"P1DT12H"').replace('"mit"', '"MIT"')
    assert parse_policy(respelled, "other.toml").to_json() == stored
    assert PolicyDoc().to_json() == PolicyDoc.from_json(PolicyDoc().to_json()).to_json()
    assert "cooldown" not in PolicyDoc().to_json()


def test_duplicates_are_kept_once() -> None:
    doc = parse_policy('deny = { names = ["a_b", "A-B", "a.b"] }', "d.toml")
    assert doc.deny.names == (NamePattern("a-b"),)


def test_name_patterns() -> None:
    prefix = NamePattern("acme-*")
    assert prefix.matches("acme-widgets") and not prefix.matches("acme")
    assert not prefix.matches("acmewidgets")
    assert NamePattern("acme").matches("acme") and not NamePattern("acme").matches("acme-x")
    doc = parse_policy('allow = { names = ["ACME.*", "Foo_Bar"] }', "a.toml")
    assert [n.text for n in doc.allow.names] == ["acme-*", "foo-bar"]


def test_kinds_are_those_files_can_have() -> None:
    assert set(PACKAGE_TYPES) >= {"sdist", "bdist_wheel", "bdist_egg"}
    assert classify_mirrored("x", "x-1.0-py2.7.egg")[0] in PACKAGE_TYPES
    assert classify_mirrored("x", "x-1.0.zip")[0] in PACKAGE_TYPES


def problems(text: str, source: str = "all.toml") -> list[str]:
    with pytest.raises(InvalidPolicy) as caught:
        parse_policy(text, source)
    assert str(caught.value) == "; ".join(caught.value.problems)
    assert caught.value.status == 400
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cooldown = [", "all.toml: not valid TOML: "),
        (
            "colldown = 1",
            "all.toml: colldown: unknown key; known keys: cooldown, vulnerabilities, allow,"
            " deny, curated",
        ),
        (
            'cooldown = { duration = "7 dayz" }',
            "all.toml: cooldown.duration: '7 dayz' is not a duration: use '7 days',"
            " '36 hours' or ISO 8601 'P7D'",
        ),
        ('cooldown = { duration = "0 days" }', "all.toml: cooldown.duration: '0 days' is zero"),
        ("cooldown = { duration = 7 }", "all.toml: cooldown.duration: expected a string"),
        ("cooldown = {}", "all.toml: cooldown.duration: missing: give one"),
        ('cooldown = "7 days"', "all.toml: cooldown: expected a table such as cooldown = {"),
        (
            'cooldown = { duration = "7 days", grace = "1 day" }',
            "all.toml: cooldown.grace: unknown key; known keys: duration",
        ),
        (
            'vulnerabilities = { action = "block" }',
            "all.toml: vulnerabilities.action: 'block' is not an action: use 'off', 'warn', 'hide'",
        ),
        (
            'vulnerabilities = { min_severity = "severe" }',
            "all.toml: vulnerabilities.min_severity: 'severe' is not a severity: use 'LOW',",
        ),
        (
            'vulnerabilities = { ids = "GHSA-" }',
            "all.toml: vulnerabilities.ids: expected a list of strings, not 'GHSA-'",
        ),
        (
            'vulnerabilities = { ids = [""] }',
            "all.toml: vulnerabilities.ids[0]: '' is not an id prefix",
        ),
        (
            'allow = { names = ["a*b"] }',
            "all.toml: allow.names[0]: 'a*b' is not a name or prefix: a prefix ends in '-*'",
        ),
        (
            'allow = { names = ["-bad-"] }',
            "all.toml: allow.names[0]: '-bad-' is not a project name",
        ),
        ("allow = { names = [3] }", "all.toml: allow.names[0]: expected a string, not 3"),
        (
            'allow = { licenses = ["nope"] }',
            "all.toml: allow.licenses[0]: 'nope' is not an SPDX licence",
        ),
        (
            'allow = { licenses = ["MIT OR GPL-3.0-only"] }',
            "all.toml: allow.licenses[0]: 'MIT OR GPL-3.0-only' is an expression: list each"
            " allowed licence on its own ('MIT', 'GPL-3.0-only')",
        ),
        (
            'deny = { requirements = ["ok<3", "urllib3<<2"] }',
            "all.toml: deny.requirements[1]: 'urllib3<<2' is not a requirement: ",
        ),
        (
            'deny = { requirements = ["x[y]>1"] }',
            "all.toml: deny.requirements[0]: 'x[y]>1' has extras, a marker or a URL",
        ),
        (
            "deny = { requirements = [\"x>1; python_version<'3'\"] }",
            "all.toml: deny.requirements[0]: ",
        ),
        (
            'deny = { statuses = ["gone"] }',
            "all.toml: deny.statuses[0]: 'gone' is not a project status: use 'archived',"
            " 'deprecated', 'quarantined'",
        ),
        ('deny = { yanked = "yes" }', "all.toml: deny.yanked: expected true or false, not 'yes'"),
        ("deny = { prereleases = 1 }", "all.toml: deny.prereleases: expected true or false"),
        (
            'deny = { kinds = ["exe"] }',
            "all.toml: deny.kinds[0]: 'exe' is not a file kind: use 'bdist_wheel', 'sdist',",
        ),
        (
            "deny = { bar = 2 }",
            "all.toml: deny.bar: unknown key; known keys: names, requirements, statuses,"
            " prereleases, yanked, kinds",
        ),
        ("curated = true", "all.toml: curated: expected a table such as curated = {"),
        ("curated = { enabled = 1 }", "all.toml: curated.enabled: expected true or false"),
    ],
)
def test_each_problem_names_source_and_key_path(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]
    assert "\n" not in found[0]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        'cooldown = { duration = "soon" }\n'
        'deny = { requirements = ["urllib3<<2"], kinds = ["exe"] }\n'
        "extra = true\n",
        "policy.toml",
    )
    assert [p.split(": ")[1] for p in found] == [
        "extra",
        "cooldown.duration",
        "deny.requirements[0]",
        "deny.kinds[0]",
    ]
    assert all(p.startswith("policy.toml: ") for p in found)


def test_a_stored_document_is_validated_too() -> None:
    with pytest.raises(InvalidPolicy, match=r"^stored policy: deny\.kinds\[0\]: 'exe'"):
        PolicyDoc.from_json({"deny": {"kinds": ["exe"]}})


def test_the_documented_examples_are_valid_policies() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "policies.md"
    blocks = re.findall(r"```toml\n(.*?)```", page.read_text(), re.S)
    assert len(blocks) >= 3
    for block in blocks:
        parse_policy(block, "docs/policies.md")
