"""A virtual index's project as its pages show it: its owner's project, filtered by policy.

The owner was decided when the member changed (:mod:`tilsit.index.owners`); here
the owner's snapshot is read, each file judged by the virtual index's policy
(:func:`tilsit.index.policy.evaluate`: quarantine, allow and deny rules,
vulnerabilities, curation, cool-down), and the result re-addressed: the virtual
index's name, its own serial, and its files linked under ``<virtual>/packages/``
whether it is public or private, so that a private member's files reach exactly
the virtual index's readers, and the shared ``/packages/`` is never written or
removed for it. A hidden file is deleted in the snapshot, so it is in no page,
no legacy JSON and no TUF target; a release with nothing shown is in no
``versions`` list. :func:`explain` keeps every verdict, for ``tilsit why``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.live import with_deleted
from tilsit.db.models import IndexRow, ProjectRow, ReviewRow, VirtualOwnerRow
from tilsit.index.owners import resolve_owner
from tilsit.index.policies import active_exemptions, get_policy
from tilsit.index.policy import (
    FileFacts,
    Verdict,
    VulnFacts,
    evaluate,
    format_time,
    name_verdict,
)
from tilsit.index.vuln_reads import KnownVuln, known_vulns
from tilsit.render.snapshot import FileSnap, ProjectSnap, ProjectSnapshots, ReleaseSnap
from tilsit.spec.versions import version_key
from tilsit.store.tree import private_root

__all__ = ["FileVerdict", "VirtualView", "explain", "published_files", "reason_text", "view"]

# Virtual indexes within virtual indexes: deeper than this is refused as a cycle would be.
_MAX_DEPTH = 16
# A core-metadata file read for its License-Expression: headers only, and bounded.
_METADATA_HEAD = 64 * 1024

ReadBlob = Callable[[str], bytes | None]


@dataclass(frozen=True, slots=True)
class FileVerdict:
    version: str
    filename: str
    sha256: str
    upload_time: datetime | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class VirtualView:
    """``name`` in a virtual index: what its pages show, and why."""

    snap: ProjectSnap | None  # None: the virtual index never had the name
    owner: str | None  # the member that supplies it (its leaf, through virtual members)
    owner_kind: str | None
    rule: str | None  # the ownership rule (tilsit.index.owners)
    reason: str | None  # why there is no page, in words
    verdicts: tuple[FileVerdict, ...] = ()


def view(
    session: Session,
    snapshots: ProjectSnapshots,
    virtual: IndexRow,
    name: str,
    now: datetime,
    read_blob: ReadBlob,
) -> ProjectSnap | None:
    return explain(session, snapshots, virtual, name, now, read_blob).snap


def explain(
    session: Session,
    snapshots: ProjectSnapshots,
    virtual: IndexRow,
    name: str,
    now: datetime,
    read_blob: ReadBlob,
    depth: int = 0,
) -> VirtualView:
    row = session.execute(
        select(ProjectRow.id, ProjectRow.name, ProjectRow.last_serial, ProjectRow.deleted_at)
        .where(ProjectRow.index_id == virtual.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    if row is None:
        return VirtualView(None, None, None, None, reason_text(session, virtual, name))
    owner = session.get(VirtualOwnerRow, row.id)
    gone = ProjectSnap(
        index=virtual.name,
        name=row.name,
        normalized=name,
        serial=row.last_serial,
        deleted=True,
        releases=(),
        files_root=private_root(virtual.name),
    )
    rule = owner.rule if owner is not None else None
    member = (
        session.get(IndexRow, owner.member_index_id)
        if owner is not None and owner.member_index_id is not None
        else None
    )
    if row.deleted_at is not None or depth > _MAX_DEPTH or member is None or member.deleted_at:
        return VirtualView(gone, None, None, rule, reason_text(session, virtual, name))
    if member.kind == "virtual":
        inner = explain(session, snapshots, member, name, now, read_blob, depth + 1)
        base, leaf, leaf_kind = inner.snap, inner.owner, inner.owner_kind
    else:
        base, leaf, leaf_kind = snapshots.load(session, member, name), member.name, member.kind
    if base is None or base.deleted or leaf_kind is None:
        return VirtualView(gone, leaf, leaf_kind, rule, reason_text(session, virtual, name))
    judged, verdicts = _judge(session, virtual, base, leaf_kind, now, read_blob)
    snap = replace(
        judged,
        index=virtual.name,
        name=row.name,
        serial=row.last_serial,
        files_root=private_root(virtual.name),
    )
    reason = None
    if not snap.live_releases:
        reason = _emptied(verdicts)
        if snap.status != "quarantined":
            # Nothing to offer: a 404 that says why (a quarantined project keeps its
            # page, PEP 792's way of saying it, with the status and no files).
            snap = replace(snap, deleted=True)
    return VirtualView(snap, leaf, leaf_kind, rule, reason, tuple(verdicts))


def _judge(
    session: Session,
    virtual: IndexRow,
    base: ProjectSnap,
    owner_kind: str,
    now: datetime,
    read_blob: ReadBlob,
) -> tuple[ProjectSnap, list[FileVerdict]]:
    """``base`` with every file the policy hides deleted, and each file's verdict."""
    policy = get_policy(session, virtual)
    name = base.normalized
    vulns = known_vulns(session, name)
    reviews = _reviews(session, virtual, name) if policy.curated.enabled else {}
    exemptions = active_exemptions(session, virtual, name, now)
    by_name = name_verdict(policy, name)
    verdicts: list[FileVerdict] = []
    releases: list[ReleaseSnap] = []
    malicious: set[str] = set()
    quarantined = 0
    for release in base.releases:
        if release.deleted:
            releases.append(release)
            continue
        covering = [v for v in vulns if v.affects(release.version)]
        facts = [_vuln_facts(v) for v in covering]
        licence = (
            _licence(release, read_blob) if policy.allow.licenses and by_name is None else None
        )
        state, why = reviews.get(version_key(release.version), (None, ""))
        files: list[FileSnap] = []
        shown = 0
        for f in release.files:
            if f.deleted:
                files.append(f)
                continue
            verdict = by_name or evaluate(
                policy,
                owner_kind=owner_kind,
                project=name,
                status=base.status,
                release_version=release.version,
                file=FileFacts(
                    f.filename,
                    f.packagetype,
                    f.yanked or release.yanked,
                    f.upload_time,
                    f.seen_at,
                ),
                vulns=facts,
                review_state=state,
                review_reason=why,
                exemptions=exemptions,
                now=now,
                license_expression=licence,
            )
            verdicts.append(
                FileVerdict(release.version, f.filename, f.sha256, f.upload_time, verdict)
            )
            if verdict.rule == "quarantine":
                malicious.update(v.id for v in covering if v.malicious)
            if verdict.shown:
                shown += 1
                files.append(f)
            else:
                files.append(replace(f, deleted=True))
        if any(v.malicious for v in covering):
            quarantined += 1
        releases.append(replace(release, files=tuple(files), deleted=shown == 0))
    live = [r for r in base.releases if not r.deleted]
    status, status_reason = base.status, ""
    if malicious and quarantined == len(live):
        # PEP 792: every release is malware, so the project is quarantined: its page
        # stays (with that status and no files) and says why.
        status, status_reason = "quarantined", f"malicious: {', '.join(sorted(malicious))}"
    return replace(base, releases=tuple(releases), status=status, status_reason=status_reason), (
        verdicts
    )


def _vuln_facts(vuln: KnownVuln) -> VulnFacts:
    return VulnFacts(vuln.id, vuln.aliases, vuln.malicious, vuln.severity)


def _reviews(session: Session, virtual: IndexRow, name: str) -> dict[str, tuple[str, str]]:
    return {
        key: (state, reason)
        for key, state, reason in session.execute(
            select(ReviewRow.version_key, ReviewRow.state, ReviewRow.reason).where(
                ReviewRow.index_id == virtual.id, ReviewRow.project == name
            )
        )
    }


def _licence(release: ReleaseSnap, read_blob: ReadBlob) -> str | None:
    """The release's ``License-Expression`` (core metadata 2.4), from any file's metadata."""
    for f in release.files:
        if f.deleted or f.metadata_sha256 is None or not f.metadata_cached:
            continue
        data = read_blob(f.metadata_sha256)
        if data is None:
            continue
        headers = BytesHeaderParser().parsebytes(data[:_METADATA_HEAD])
        value = headers.get("License-Expression")
        return str(value).strip() if value else None
    return None


def _emptied(verdicts: list[FileVerdict]) -> str | None:
    """Why a page has no file left: the first hidden verdict's words."""
    for item in verdicts:
        if not item.verdict.shown:
            text = item.verdict.text
            if item.verdict.until is not None and "until" not in text:
                text += f" (until {format_time(item.verdict.until)})"
            return f"every file is hidden by policy: {text}"
    return None


def published_files(page: bytes | None) -> set[tuple[str, str]]:
    """``(filename, sha256)`` of every file a project's PEP 691 page lists."""
    if page is None:
        return set()
    try:
        data = json.loads(page)
    except ValueError:
        return set()
    out: set[tuple[str, str]] = set()
    for entry in data.get("files", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict):
            continue
        filename, hashes = entry.get("filename"), entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        if isinstance(filename, str) and isinstance(sha256, str):
            out.add((filename, sha256))
    return out


def reason_text(session: Session, virtual: IndexRow, name: str) -> str | None:
    """Why ``virtual`` has no page for ``name`` by ownership, in words, if it has a reason."""
    found = session.execute(
        select(VirtualOwnerRow.rule, VirtualOwnerRow.detail, VirtualOwnerRow.member_index_id)
        .join(ProjectRow, ProjectRow.id == VirtualOwnerRow.project_id)
        .where(ProjectRow.index_id == virtual.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    rule: str
    detail: dict[str, Any]
    member_id: int | None
    if found is None:
        # A name no member has yet: a reservation still names it.
        owner = resolve_owner(session, virtual, name)
        if owner.rule != "reserved":
            return None
        rule, detail = owner.rule, owner.detail
        member_id = owner.member.id if owner.member is not None else None
    else:
        rule, detail, member_id = found.rule, found.detail or {}, found.member_index_id
    if rule == "reserved":
        return (
            f"{name!r} is reserved by index {detail.get('by', '?')!r}"
            f" (as {detail.get('pattern', name)!r}): no other index may supply it"
            + (", and it has no such project yet" if member_id is not None else "")
        )
    if rule == "confusable":
        return (
            f"{name!r} is hidden in {virtual.name!r}: it looks like"
            f" {detail.get('like', '?')!r} of index {detail.get('of', '?')!r}"
        )
    if rule == "route":
        return (
            f"{name!r} is routed to index {detail.get('member', '?')!r}, which has no such project"
        )
    if rule == "first" and member_id is not None:
        member = session.get(IndexRow, member_id)
        if member is not None and member.kind == "hosted":
            return f"{name!r} was removed from index {member.name!r}, which keeps the name"
    return None


def why_document(view: VirtualView, index: str, name: str) -> dict[str, Any]:
    """``explain``'s answer as JSON: what ``/_/why/<index>/<project>`` and ``tilsit why
    --json`` give."""
    return {
        "index": index,
        "project": name,
        "owner": view.owner,
        "owner_kind": view.owner_kind,
        "rule": view.rule,
        "reason": view.reason,
        "status": view.snap.status if view.snap is not None else None,
        "files": [
            {
                "version": item.version,
                "filename": item.filename,
                "sha256": item.sha256,
                "upload_time": format_time(item.upload_time) if item.upload_time else None,
                "shown": item.verdict.shown,
                "rule": item.verdict.rule,
                "text": item.verdict.text,
                "until": format_time(item.verdict.until) if item.verdict.until else None,
                "warnings": list(item.verdict.warnings),
            }
            for item in view.verdicts
        ],
    }
