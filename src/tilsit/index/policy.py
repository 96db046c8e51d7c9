"""Whether a virtual index's policy shows one file, and why: pure, no database.

The renderer of a virtual index fills the small fact records below from its rows
and asks :func:`evaluate` for each file of the owning member; a hidden file is
left out of every page, JSON document and TUF target of that index. The rules
run in one fixed order and the first that hides names the reason, so the 404
body and ``tilsit why`` say the same thing a user needs to act on:

1. ``quarantine``: a malicious (MAL-) record covers the version; never exempted.
2. ``allow.names``, ``deny.names``.
3. ``allow.requirements``, ``deny.requirements``: the version against the
   specifiers of the requirements that name the project.
4. ``deny.statuses``: the project's PEP 792 status (a version a malicious record
   covers is already hidden by 1, as ``quarantined`` would hide it).
5. ``allow.licenses``: the release's SPDX expression must be satisfiable with
   the allowed licences; a release that states none is hidden.
6. ``deny.prereleases``, ``deny.yanked``, ``deny.kinds``.
7. ``vulnerabilities``: ``hide`` hides versions covered by a matching record
   (by id or alias prefix, and by minimum severity where the record states one);
   ``warn`` shows them with a warning.
8. ``curated``: a file of a non-hosted owner needs an approved review.
9. ``cooldown``: a mirror or proxy file younger than the duration (by its
   upstream upload time, else by when it was first seen here) is hidden until
   it comes of age, unless an unexpired exemption covers the project or release.

Times are compared in UTC; a naive datetime is read as UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tilsit.index.policy_doc import SEVERITIES, PolicyDoc, RequirementRule
from tilsit.spec.versions import version_key

__all__ = [
    "ExemptionFacts",
    "FileFacts",
    "Verdict",
    "VulnFacts",
    "evaluate",
    "format_time",
    "name_verdict",
    "next_change",
]


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the policy reads of one file (a ``FileRow``)."""

    filename: str
    packagetype: str  # "bdist_wheel", "sdist", "bdist_egg", ...
    yanked: bool = False  # the file or its release, as the owning member serves it
    upload_time: datetime | None = None  # the upstream's upload time
    seen_at: datetime | None = None  # when this server first saw the file


@dataclass(frozen=True, slots=True)
class VulnFacts:
    """One OSV record that covers the version being evaluated."""

    id: str
    aliases: tuple[str, ...] = ()
    malicious: bool = False  # a MAL- record (by id or alias)
    # The record's qualitative level, where it states one: LOW, MODERATE (MEDIUM),
    # HIGH or CRITICAL. None (or a level not among these): the record always counts.
    severity: str | None = None


@dataclass(frozen=True, slots=True)
class ExemptionFacts:
    """A cool-down exemption (a ``PolicyExemptionRow`` not removed)."""

    project: str  # normalised
    version: str | None  # None: every version of the project
    expires_at: datetime
    reason: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a file is shown, the rule that decided, and the words a user reads.

    ``rule`` is a key path of the document (``deny.requirements``, ``cooldown``)
    or ``quarantine`` when hidden; when shown, what admitted the file:
    ``vulnerabilities`` (shown with a warning), ``exemption`` (a cool-down let
    through), ``curated`` (an approved review) or ``default``. ``until`` is when
    this verdict changes by itself: a cool-down's end for a hidden file, an
    exemption's expiry for a file it lets through early; None when only a change
    of data (an import, a review, a new policy) can change it.
    """

    shown: bool
    rule: str
    text: str
    until: datetime | None = None
    warnings: tuple[str, ...] = ()


def format_time(moment: datetime) -> str:
    """``2026-12-10T12:00:00Z``: how verdicts name a time."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def name_verdict(policy: PolicyDoc, project: str) -> Verdict | None:
    """The hidden verdict that ``allow.names`` or ``deny.names`` gives every file of
    ``project``, or None: lets a renderer skip a project without reading its files."""
    name = canonicalize_name(project)
    allow = policy.allow.names
    if allow and not any(pattern.matches(name) for pattern in allow):
        return Verdict(False, "allow.names", f"{name!r} is not in allow.names")
    for pattern in policy.deny.names:
        if pattern.matches(name):
            return Verdict(False, "deny.names", f"denied by deny.names {pattern.text!r}")
    return None


def evaluate(
    policy: PolicyDoc,
    *,
    owner_kind: str,
    project: str,
    status: str,
    release_version: str,
    file: FileFacts,
    vulns: Sequence[VulnFacts],
    review_state: str | None,
    review_reason: str = "",
    exemptions: Sequence[ExemptionFacts],
    now: datetime,
    license_expression: str | None,
) -> Verdict:
    """The verdict of ``policy`` on one file; see the module's docstring for the order.

    ``owner_kind`` is the kind of the member that supplies the project ("hosted",
    "mirror", "proxy"); ``status`` the project's PEP 792 status ("active",
    "archived", ...); ``vulns`` the records that cover ``release_version``;
    ``review_state`` the release's review in this index (None, "pending",
    "approved", "rejected", with ``review_reason`` for a rejection);
    ``exemptions`` the index's exemptions (others' projects and expired ones are
    ignored); ``license_expression`` the release's core-metadata License-Expression.
    """
    name = canonicalize_name(project)
    now = _utc(now)
    malicious = sorted(v.id for v in vulns if v.malicious)
    if malicious:
        return Verdict(False, "quarantine", f"quarantined: {', '.join(malicious)}")
    hidden = (
        name_verdict(policy, name)
        or _requirements(policy, name, release_version)
        or _statuses(policy, status)
        or _licences(policy, license_expression)
        or _file_rules(policy, release_version, file)
    )
    if hidden is not None:
        return hidden
    warnings: tuple[str, ...] = ()
    action = policy.vulnerabilities.action
    if action != "off":
        found = sorted({v.id for v in vulns if _counts(policy, v)})
        if found and action == "hide":
            return Verdict(False, "vulnerabilities", f"vulnerable: {', '.join(found)}")
        if found:
            warnings = (f"vulnerable: {', '.join(found)}",)
    reviewed = False
    if policy.curated.enabled and owner_kind != "hosted":
        if review_state == "approved":
            reviewed = True
        elif review_state == "pending":
            return Verdict(False, "curated", "awaiting review")
        elif review_state == "rejected":
            return Verdict(False, "curated", f"rejected: {review_reason or 'no reason given'}")
        else:
            return Verdict(False, "curated", "not reviewed: request a review of this release")
    cooldown = _cooldown(policy, owner_kind, name, release_version, file, exemptions, now)
    if cooldown is not None and not cooldown.shown:
        return cooldown
    rules = [("vulnerabilities", f"warning: {w}") for w in warnings]
    if cooldown is not None:
        rules.append((cooldown.rule, cooldown.text))
    if reviewed:
        rules.append(("curated", "approved by review"))
    if not rules:
        return Verdict(True, "default", "shown")
    return Verdict(
        True,
        rules[0][0],
        "; ".join(text for _rule, text in rules),
        until=cooldown.until if cooldown is not None else None,
        warnings=warnings,
    )


def next_change(verdicts: Iterable[Verdict], now: datetime) -> datetime | None:
    """The earliest time after ``now`` at which one of ``verdicts`` (say, those of
    every file of a project) changes by itself: when the maturing job must render
    the project again. None: no verdict changes with time alone."""
    now = _utc(now)
    times = [_utc(v.until) for v in verdicts if v.until is not None and _utc(v.until) > now]
    return min(times, default=None)


# -- the rules ----------------------------------------------------------------------------


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _quoted(rules: Sequence[RequirementRule]) -> str:
    return " or ".join(repr(rule.text) for rule in rules)


def _requirements(policy: PolicyDoc, name: str, release_version: str) -> Verdict | None:
    allow = [rule for rule in policy.allow.requirements if rule.name == name]
    deny = [rule for rule in policy.deny.requirements if rule.name == name]
    if not allow and not deny:
        return None
    version = _version(release_version)
    # A version packaging cannot read cannot be shown to satisfy an allow rule nor to
    # escape a deny rule: a policy that names the project hides it either way.
    if allow and (
        version is None or not any(r.specifier.contains(version, prereleases=True) for r in allow)
    ):
        return Verdict(
            False, "allow.requirements", f"not allowed by allow.requirements {_quoted(allow)}"
        )
    for rule in deny:
        if version is None or rule.specifier.contains(version, prereleases=True):
            return Verdict(False, "deny.requirements", f"denied by deny.requirements {rule.text!r}")
    return None


def _statuses(policy: PolicyDoc, status: str) -> Verdict | None:
    if status in policy.deny.statuses:
        return Verdict(False, "deny.statuses", f"denied by deny.statuses: project is {status}")
    return None


def _licences(policy: PolicyDoc, expression: str | None) -> Verdict | None:
    allowed = policy.allow.licenses
    if not allowed:
        return None
    if not expression or not expression.strip():
        return Verdict(
            False,
            "allow.licenses",
            "no licence expression: allow.licenses admits only releases that state one",
        )
    outcome = _licence_outcome(expression, allowed)
    if outcome is None:
        return None
    return Verdict(False, "allow.licenses", outcome)


@functools.lru_cache(maxsize=4096)
def _licence_outcome(expression: str, allowed: tuple[str, ...]) -> str | None:
    """None if ``expression`` is satisfied by ``allowed``, else why not (cached: every
    file of a release, and many releases, share one expression)."""
    try:
        canonical = canonicalize_license_expression(expression)
    except InvalidLicenseExpression:
        return f"licence expression {expression!r} is not valid SPDX"
    tokens = canonical.replace("(", " ( ").replace(")", " ) ").split()
    keys = {licence.lower() for licence in allowed}
    satisfied, _rest = _or(tokens, keys)
    if satisfied:
        return None
    return f"licence {canonical!r} is not allowed by allow.licenses"


# SPDX expressions, as canonicalize_license_expression spells them: OR binds
# loosest, then AND, then WITH; parentheses group. Each returns (satisfied, rest).
def _or(tokens: list[str], allowed: set[str]) -> tuple[bool, list[str]]:
    satisfied, tokens = _and(tokens, allowed)
    while tokens[:1] == ["OR"]:
        right, tokens = _and(tokens[1:], allowed)
        satisfied = satisfied or right
    return satisfied, tokens


def _and(tokens: list[str], allowed: set[str]) -> tuple[bool, list[str]]:
    satisfied, tokens = _term(tokens, allowed)
    while tokens[:1] == ["AND"]:
        right, tokens = _term(tokens[1:], allowed)
        satisfied = satisfied and right
    return satisfied, tokens


def _term(tokens: list[str], allowed: set[str]) -> tuple[bool, list[str]]:
    if tokens[:1] == ["("]:
        satisfied, tokens = _or(tokens[1:], allowed)
        return satisfied, tokens[1:]  # the ")"
    licence, tokens = tokens[0], tokens[1:]
    if tokens[:1] == ["WITH"]:
        licence, tokens = f"{licence} WITH {tokens[1]}", tokens[2:]
    return licence.lower() in allowed, tokens


def _file_rules(policy: PolicyDoc, release_version: str, file: FileFacts) -> Verdict | None:
    deny = policy.deny
    if deny.prereleases:
        version = _version(release_version)
        if version is not None and version.is_prerelease:
            return Verdict(False, "deny.prereleases", "pre-release, denied by deny.prereleases")
    if deny.yanked and file.yanked:
        return Verdict(False, "deny.yanked", "yanked, denied by deny.yanked")
    if file.packagetype in deny.kinds:
        return Verdict(False, "deny.kinds", f"{file.packagetype} file, denied by deny.kinds")
    return None


_LEVELS = {level: rank for rank, level in enumerate(SEVERITIES)} | {"MEDIUM": 1}


def _counts(policy: PolicyDoc, vuln: VulnFacts) -> bool:
    """Whether ``vuln`` (not malicious) is one the vulnerability rule acts on."""
    if vuln.malicious:
        return False
    prefixes = tuple(prefix.upper() for prefix in policy.vulnerabilities.ids)
    if prefixes and not any(name.upper().startswith(prefixes) for name in (vuln.id, *vuln.aliases)):
        return False
    least = policy.vulnerabilities.min_severity
    level = _LEVELS.get((vuln.severity or "").upper())
    return least is None or level is None or level >= _LEVELS[least]


def _cooldown(
    policy: PolicyDoc,
    owner_kind: str,
    name: str,
    release_version: str,
    file: FileFacts,
    exemptions: Sequence[ExemptionFacts],
    now: datetime,
) -> Verdict | None:
    """Hidden while young; shown early by an exemption; None when the rule does not apply
    (no cool-down, a hosted owner, or a file of age)."""
    if policy.cooldown is None or owner_kind == "hosted":
        return None
    born = file.upload_time or file.seen_at
    if born is None:
        # Never seen arrive and no upload time: as new as can be, for as long as that lasts.
        return Verdict(False, "cooldown", "hidden by cool-down: its upload time is unknown")
    matures = _utc(born) + policy.cooldown.duration
    if matures <= now:
        return None
    key = version_key(release_version)
    covering = [
        e
        for e in exemptions
        if canonicalize_name(e.project) == name
        and (e.version is None or version_key(e.version) == key)
        and _utc(e.expires_at) > now
    ]
    if not covering:
        return Verdict(
            False, "cooldown", f"hidden by cool-down until {format_time(matures)}", until=matures
        )
    exemption = max(covering, key=lambda e: _utc(e.expires_at))
    expires = _utc(exemption.expires_at)
    what = "release" if exemption.version is not None else "project"
    text = f"cool-down exempted ({what}) until {format_time(expires)}"
    if exemption.reason:
        text += f": {exemption.reason}"
    return Verdict(True, "exemption", text, until=expires if expires < matures else None)
