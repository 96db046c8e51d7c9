"""The verdict of a policy on one file: each rule, their order (the first that hides
names the reason), the cool-down and its exemptions, and when a verdict changes."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tilsit.index.policy as policy_module
from tilsit.index.policy import (
    ExemptionFacts,
    FileFacts,
    Verdict,
    VulnFacts,
    evaluate,
    format_time,
    name_verdict,
    next_change,
)
from tilsit.index.policy_doc import PolicyDoc, parse_policy

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WHEEL = FileFacts("demo-1.0-py3-none-any.whl", "bdist_wheel", upload_time=NOW - timedelta(days=30))


def policy(text: str) -> PolicyDoc:
    return parse_policy(text, "test.toml")


def verdict(doc: PolicyDoc, **facts: Any) -> Verdict:
    given: dict[str, Any] = {
        "owner_kind": "proxy",
        "project": "demo",
        "status": "active",
        "release_version": "1.0",
        "file": WHEEL,
        "vulns": (),
        "review_state": None,
        "exemptions": (),
        "now": NOW,
        "license_expression": "MIT",
    }
    given.update(facts)
    return evaluate(doc, **given)


def hidden(doc: PolicyDoc, **facts: Any) -> tuple[str, str]:
    found = verdict(doc, **facts)
    assert not found.shown, found
    return found.rule, found.text


def shown(doc: PolicyDoc, **facts: Any) -> Verdict:
    found = verdict(doc, **facts)
    assert found.shown, found
    return found


MAL = VulnFacts("MAL-2025-1234", malicious=True)
GHSA = VulnFacts("GHSA-aaaa-bbbb-cccc", aliases=("CVE-2025-1",), severity="HIGH")
PYSEC = VulnFacts("PYSEC-2025-9", severity="LOW")


def test_the_empty_policy_shows_everything() -> None:
    found = shown(PolicyDoc(), file=replace(WHEEL, upload_time=NOW), license_expression=None)
    assert found == Verdict(True, "default", "shown")


# -- each rule ------------------------------------------------------------------------------


def test_quarantine_hides_whatever_the_policy_says() -> None:
    assert hidden(PolicyDoc(), vulns=[GHSA, MAL]) == ("quarantine", "quarantined: MAL-2025-1234")
    assert hidden(PolicyDoc(), owner_kind="hosted", vulns=[MAL])[0] == "quarantine"


def test_quarantine_is_never_exempted() -> None:
    doc = policy('cooldown = { duration = "7 days" }')
    exempt = ExemptionFacts("demo", None, NOW + timedelta(days=1), "needed")
    assert hidden(doc, vulns=[MAL], exemptions=[exempt])[0] == "quarantine"


def test_allow_names() -> None:
    doc = policy('allow = { names = ["django", "acme-*"] }')
    assert hidden(doc) == ("allow.names", "'demo' is not in allow.names")
    shown(doc, project="Django")
    shown(doc, project="acme_widgets")
    assert hidden(doc, project="acme")[0] == "allow.names"
    assert name_verdict(doc, "demo") == Verdict(
        False, "allow.names", "'demo' is not in allow.names"
    )
    assert name_verdict(doc, "django") is None


def test_deny_names() -> None:
    doc = policy('deny = { names = ["Demo", "evil-*"] }')
    assert hidden(doc) == ("deny.names", "denied by deny.names 'demo'")
    assert hidden(doc, project="evil.pkg") == ("deny.names", "denied by deny.names 'evil-*'")
    shown(doc, project="evil")
    shown(doc, project="other")


def test_allow_requirements_limit_the_versions_of_the_project_they_name() -> None:
    doc = policy('allow = { requirements = ["django>=4.2", "django==3.2.*"] }')
    shown(doc, project="django", release_version="4.2.1")
    shown(doc, project="django", release_version="3.2.19")
    assert hidden(doc, project="django", release_version="4.1") == (
        "allow.requirements",
        "not allowed by allow.requirements 'django>=4.2' or 'django==3.2.*'",
    )
    # Pre-releases are not filtered here (deny.prereleases does that).
    shown(doc, project="django", release_version="5.0rc1")
    # Other projects are not limited by it.
    shown(doc, project="flask", release_version="0.1")
    # A version packaging cannot read cannot satisfy it.
    assert hidden(doc, project="django", release_version="4.2-custom-build")[0] == (
        "allow.requirements"
    )


def test_deny_requirements() -> None:
    doc = policy('deny = { requirements = ["urllib3<2", "requests==2.31.0"] }')
    assert hidden(doc, project="urllib3", release_version="1.26.18") == (
        "deny.requirements",
        "denied by deny.requirements 'urllib3<2'",
    )
    shown(doc, project="urllib3", release_version="2.0.7")
    assert hidden(doc, project="requests", release_version="2.31")[0] == "deny.requirements"
    shown(doc, project="requests", release_version="2.32.0")
    assert hidden(doc, project="urllib3", release_version="not.a.version")[0] == (
        "deny.requirements"
    )
    everything = policy('deny = { requirements = ["urllib3"] }')
    assert hidden(everything, project="urllib3", release_version="2.0.0b1")[0] == (
        "deny.requirements"
    )


def test_deny_statuses() -> None:
    doc = policy('deny = { statuses = ["archived", "quarantined"] }')
    assert hidden(doc, status="archived") == (
        "deny.statuses",
        "denied by deny.statuses: project is archived",
    )
    assert hidden(doc, status="quarantined")[0] == "deny.statuses"
    shown(doc, status="deprecated")
    shown(doc, status="active")


def test_allow_licenses() -> None:
    doc = policy('allow = { licenses = ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception"] }')
    shown(doc, license_expression="mit")
    shown(doc, license_expression="MIT OR GPL-3.0-only")
    shown(doc, license_expression="(GPL-3.0-only OR MIT) AND Apache-2.0")
    shown(doc, license_expression="Apache-2.0 WITH LLVM-exception")
    assert hidden(doc, license_expression="MIT AND GPL-3.0-only") == (
        "allow.licenses",
        "licence 'MIT AND GPL-3.0-only' is not allowed by allow.licenses",
    )
    assert hidden(doc, license_expression="GPL-2.0-only WITH Classpath-exception-2.0")[0] == (
        "allow.licenses"
    )
    assert hidden(doc, license_expression=None) == (
        "allow.licenses",
        "no licence expression: allow.licenses admits only releases that state one",
    )
    assert hidden(doc, license_expression="  ")[0] == "allow.licenses"
    assert hidden(doc, license_expression="MIT-ish") == (
        "allow.licenses",
        "licence expression 'MIT-ish' is not valid SPDX",
    )
    # Without the rule, no expression is needed.
    shown(PolicyDoc(), license_expression=None)


def test_deny_prereleases_yanked_kinds() -> None:
    doc = policy('deny = { prereleases = true, yanked = true, kinds = ["bdist_egg", "sdist"] }')
    for version in ("2.0rc1", "2.0.dev3", "2.0a1"):
        assert hidden(doc, release_version=version) == (
            "deny.prereleases",
            "pre-release, denied by deny.prereleases",
        )
    shown(doc, release_version="2.0.post1")
    assert hidden(doc, file=replace(WHEEL, yanked=True)) == (
        "deny.yanked",
        "yanked, denied by deny.yanked",
    )
    egg = FileFacts("demo-1.0-py2.7.egg", "bdist_egg", upload_time=WHEEL.upload_time)
    assert hidden(doc, file=egg) == ("deny.kinds", "bdist_egg file, denied by deny.kinds")
    shown(doc)
    # Off by default: pre-releases and yanked files are shown.
    shown(PolicyDoc(), release_version="2.0rc1", file=replace(WHEEL, yanked=True))


def test_vulnerabilities_hide() -> None:
    doc = policy('vulnerabilities = { action = "hide" }')
    assert hidden(doc, vulns=[PYSEC, GHSA]) == (
        "vulnerabilities",
        "vulnerable: GHSA-aaaa-bbbb-cccc, PYSEC-2025-9",
    )
    shown(doc, vulns=[])


def test_vulnerabilities_filtered_by_id_or_alias_prefix() -> None:
    doc = policy('vulnerabilities = { action = "hide", ids = ["cve-"] }')
    assert hidden(doc, vulns=[GHSA, PYSEC]) == (
        "vulnerabilities",
        "vulnerable: GHSA-aaaa-bbbb-cccc",
    )
    shown(doc, vulns=[PYSEC])


def test_vulnerabilities_filtered_by_severity_where_the_record_states_one() -> None:
    doc = policy('vulnerabilities = { action = "hide", min_severity = "moderate" }')
    shown(doc, vulns=[PYSEC])  # LOW
    assert hidden(doc, vulns=[replace(PYSEC, severity="MEDIUM")])[0] == "vulnerabilities"
    assert hidden(doc, vulns=[GHSA])[0] == "vulnerabilities"  # HIGH
    assert hidden(doc, vulns=[replace(PYSEC, severity=None)])[0] == "vulnerabilities"
    critical = policy('vulnerabilities = { action = "hide", min_severity = "CRITICAL" }')
    shown(critical, vulns=[GHSA])


def test_vulnerabilities_warn_shows_with_a_warning() -> None:
    doc = policy('vulnerabilities = { action = "warn" }')
    found = shown(doc, vulns=[GHSA])
    assert found.rule == "vulnerabilities"
    assert found.text == "warning: vulnerable: GHSA-aaaa-bbbb-cccc"
    assert found.warnings == ("vulnerable: GHSA-aaaa-bbbb-cccc",)
    assert shown(policy('vulnerabilities = { action = "off" }'), vulns=[GHSA]).rule == "default"


def test_curated_needs_an_approved_review_for_files_of_non_hosted_owners() -> None:
    doc = policy("curated = { enabled = true }")
    assert hidden(doc, review_state="pending") == ("curated", "awaiting review")
    assert hidden(doc, review_state="rejected", review_reason="typosquat") == (
        "curated",
        "rejected: typosquat",
    )
    assert hidden(doc, review_state=None)[0] == "curated"
    assert hidden(doc, owner_kind="mirror", review_state=None)[0] == "curated"
    found = shown(doc, review_state="approved")
    assert (found.rule, found.text) == ("curated", "approved by review")
    assert shown(doc, owner_kind="hosted", review_state=None).rule == "default"


# -- the cool-down --------------------------------------------------------------------------

WEEK = policy('cooldown = { duration = "7 days" }')


def young(**times: datetime | None) -> FileFacts:
    return FileFacts("demo-1.0.tar.gz", "sdist", **times)  # type: ignore[arg-type]


def test_cooldown_hides_young_files_until_they_come_of_age() -> None:
    uploaded = NOW - timedelta(hours=1)
    found = verdict(WEEK, file=young(upload_time=uploaded))
    matures = uploaded + timedelta(days=7)
    assert found == Verdict(
        False, "cooldown", "hidden by cool-down until 2026-12-10T11:00:00Z", until=matures
    )
    shown(WEEK, file=young(upload_time=NOW - timedelta(days=7)))
    assert hidden(WEEK, file=young(upload_time=NOW - timedelta(days=7) + timedelta(seconds=1)))[
        0
    ] == ("cooldown")
    # The same file, a week later, is shown: the verdict depends on now alone.
    shown(WEEK, file=young(upload_time=uploaded), now=matures)


def test_cooldown_reads_seen_at_when_the_upstream_gave_no_upload_time() -> None:
    found = verdict(WEEK, file=young(upload_time=None, seen_at=NOW - timedelta(days=1)))
    assert not found.shown and found.until == NOW + timedelta(days=6)
    shown(WEEK, file=young(upload_time=None, seen_at=NOW - timedelta(days=8)))
    # The upstream's upload time wins over when it was first seen here.
    shown(WEEK, file=young(upload_time=NOW - timedelta(days=8), seen_at=NOW))
    assert hidden(WEEK, file=young()) == (
        "cooldown",
        "hidden by cool-down: its upload time is unknown",
    )


def test_cooldown_never_applies_to_hosted_files() -> None:
    shown(WEEK, owner_kind="hosted", file=young(upload_time=NOW))
    assert hidden(WEEK, owner_kind="mirror", file=young(upload_time=NOW))[0] == "cooldown"


def test_naive_times_are_read_as_utc() -> None:
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    found = verdict(WEEK, file=young(upload_time=naive), now=NOW.replace(tzinfo=None))
    assert found.until == NOW + timedelta(days=7) - timedelta(hours=1)


@pytest.mark.parametrize(
    ("exemption", "applies"),
    [
        (ExemptionFacts("demo", None, NOW + timedelta(days=1)), True),
        (ExemptionFacts("Demo", "1.0", NOW + timedelta(days=1)), True),
        (ExemptionFacts("demo", "1.0.0", NOW + timedelta(days=1)), True),  # one version
        (ExemptionFacts("demo", "1.1", NOW + timedelta(days=1)), False),
        (ExemptionFacts("other", None, NOW + timedelta(days=1)), False),
        (ExemptionFacts("demo", None, NOW), False),  # expired at now
        (ExemptionFacts("demo", None, NOW - timedelta(days=1)), False),
    ],
)
def test_an_unexpired_exemption_of_the_project_or_release_lets_a_young_file_through(
    exemption: ExemptionFacts, applies: bool
) -> None:
    found = verdict(WEEK, file=young(upload_time=NOW), exemptions=[exemption])
    assert found.shown is applies
    assert found.rule == ("exemption" if applies else "cooldown")


def test_the_exemption_window() -> None:
    uploaded = NOW - timedelta(days=1)
    matures = uploaded + timedelta(days=7)
    short = ExemptionFacts("demo", "1.0", NOW + timedelta(days=2), "CVE fix needed now", id=4)
    found = verdict(WEEK, file=young(upload_time=uploaded), exemptions=[short])
    # Shown until the exemption expires, which is before the file comes of age.
    assert found == Verdict(
        True,
        "exemption",
        "cool-down exempted (release) until 2026-12-05T12:00:00Z: CVE fix needed now",
        until=short.expires_at,
    )
    # After it expires the file is hidden again, until it comes of age.
    later = verdict(
        WEEK, file=young(upload_time=uploaded), exemptions=[short], now=short.expires_at
    )
    assert (later.shown, later.until) == (False, matures)
    # An exemption that outlasts the cool-down changes nothing at its expiry.
    long = ExemptionFacts("demo", None, NOW + timedelta(days=30))
    found = verdict(WEEK, file=young(upload_time=uploaded), exemptions=[short, long])
    assert found.shown and found.until is None and "(project)" in found.text
    # An old file needs no exemption: the rule does not speak.
    assert shown(WEEK, exemptions=[long]).rule == "default"


# -- order ----------------------------------------------------------------------------------

EVERYTHING = policy(
    """
cooldown = { duration = "7 days" }
vulnerabilities = { action = "hide" }
allow = { names = ["demo", "other"], requirements = ["demo>=1"], licenses = ["MIT"] }
curated = { enabled = true }

[deny]
names = ["other"]
requirements = ["demo<1.5"]
statuses = ["archived"]
prereleases = true
yanked = true
kinds = ["sdist"]
"""
)


def test_the_first_rule_that_hides_names_the_reason() -> None:
    """Each case fails every later rule too; removing its own failure exposes the next."""
    worst: dict[str, Any] = {
        "vulns": [MAL, GHSA],
        "project": "intruder",
        "release_version": "0.5rc1",
        "status": "archived",
        "license_expression": "GPL-3.0-only",
        "file": FileFacts("demo-0.5rc1.tar.gz", "sdist", yanked=True, upload_time=NOW),
        "review_state": "pending",
    }
    expected = [
        ("quarantine", {"vulns": [GHSA]}),
        ("allow.names", {"project": "other"}),
        ("deny.names", {"project": "demo"}),
        ("allow.requirements", {"release_version": "1.2rc1"}),
        ("deny.requirements", {"release_version": "2.0rc1"}),
        ("deny.statuses", {"status": "active"}),
        ("allow.licenses", {"license_expression": "MIT"}),
        ("deny.prereleases", {"release_version": "2.0"}),
        (
            "deny.yanked",
            {"file": FileFacts("demo-2.0.tar.gz", "sdist", yanked=False, upload_time=NOW)},
        ),
        (
            "deny.kinds",
            {"file": FileFacts("demo-2.0-py3-none-any.whl", "bdist_wheel", upload_time=NOW)},
        ),
        ("vulnerabilities", {"vulns": []}),
        ("curated", {"review_state": "approved"}),
        ("cooldown", {"now": NOW + timedelta(days=8)}),
    ]
    facts = dict(worst)
    for rule, fix in expected:
        assert hidden(EVERYTHING, **facts)[0] == rule
        facts.update(fix)
    assert shown(EVERYTHING, **facts).rule == "curated"


def test_warnings_do_not_stop_later_rules() -> None:
    doc = policy('vulnerabilities = { action = "warn" }\ncooldown = { duration = "1 day" }')
    assert hidden(doc, vulns=[GHSA], file=young(upload_time=NOW))[0] == "cooldown"
    exempt = ExemptionFacts("demo", None, NOW + timedelta(hours=2))
    found = shown(doc, vulns=[GHSA], file=young(upload_time=NOW), exemptions=[exempt])
    assert found.rule == "vulnerabilities" and found.warnings
    assert found.text.startswith("warning: vulnerable: GHSA-aaaa-bbbb-cccc; cool-down exempted")
    assert found.until == exempt.expires_at


# -- when verdicts change -------------------------------------------------------------------


def test_next_change_is_the_earliest_flip() -> None:
    files: Sequence[FileFacts] = [
        young(upload_time=NOW - timedelta(days=2)),  # matures in 5 days
        young(upload_time=NOW - timedelta(days=6)),  # matures in 1 day
        young(upload_time=NOW - timedelta(days=30)),  # shown, for good
    ]
    verdicts = [verdict(WEEK, file=f) for f in files]
    assert next_change(verdicts, NOW) == NOW + timedelta(days=1)
    exempt = ExemptionFacts("demo", None, NOW + timedelta(hours=3))
    verdicts = [verdict(WEEK, file=f, exemptions=[exempt]) for f in files]
    assert next_change(verdicts, NOW) == NOW + timedelta(hours=3)
    assert next_change([verdict(PolicyDoc())], NOW) is None
    assert next_change([], NOW) is None
    # A time already past is not a change to come.
    assert next_change(verdicts, NOW + timedelta(hours=3)) is None


def test_format_time() -> None:
    assert format_time(datetime(2026, 12, 10, 12, tzinfo=UTC)) == "2026-12-10T12:00:00Z"
    assert format_time(datetime(2026, 12, 10, 12)) == "2026-12-10T12:00:00Z"


def test_the_public_surface() -> None:
    """What the renderer of virtual indexes calls: a change here is a change of contract."""
    assert sorted(policy_module.__all__) == [
        "ExemptionFacts",
        "FileFacts",
        "Verdict",
        "VulnFacts",
        "evaluate",
        "format_time",
        "name_verdict",
        "next_change",
    ]
    assert list(inspect.signature(evaluate).parameters) == [
        "policy",
        "owner_kind",
        "project",
        "status",
        "release_version",
        "file",
        "vulns",
        "review_state",
        "review_reason",
        "exemptions",
        "now",
        "license_expression",
    ]
