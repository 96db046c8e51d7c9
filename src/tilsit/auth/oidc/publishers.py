"""Trusted publishers: which CI identity may upload to which project.

Three kinds, each stored as a :class:`PublisherRow` whose ``claims`` say what a
token must carry:

- ``github``: GitHub Actions. ``repository`` (``owner/name``), ``repository_owner``,
  optionally ``repository_owner_id`` (owner names can be re-registered after a
  rename or deletion; the numeric id cannot), the workflow file name and an
  optional deployment ``environment``.
- ``gitlab``: GitLab CI on gitlab.com or a self-managed instance (the issuer).
  ``project_path`` (``namespace/project``), the CI config file path and an
  optional ``environment``.
- ``oidc``: any other issuer (Gitea, Forgejo, Buildkite, ...): its URL, where its
  keys are (a JWKS URL, discovery, or static keys) and claims matched exactly.

A *pending* publisher has no project yet: it names the project
(``pending_name``) that its first upload creates, owned by the user who added it.

A publisher acts on the rights of the user who added it (``created_by``): an
Owner of the project, or for a pending one a user who may create projects in
the index. Those rights are checked when it is added and whenever it is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.oidc.authority import authority_refusal
from tilsit.auth.oidc.jwks import usable_keys
from tilsit.db.models import IndexRow, ProjectRow, PublisherRow, UserRow
from tilsit.spec.names import InvalidProjectName, normalize, validate_name

__all__ = [
    "GITLAB_ISSUER",
    "KINDS",
    "InvalidPublisher",
    "PublisherSpec",
    "add_publisher",
    "describe",
    "generic_spec",
    "github_spec",
    "gitlab_spec",
    "key_source_of",
    "matches",
    "remove_publisher",
]

KINDS = ("github", "gitlab", "oidc")
GITLAB_ISSUER = "https://gitlab.com"

# GitHub: owner names are alphanumeric with single hyphens; repository names also
# allow '.', '_'. GitLab paths allow nested groups.
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$")
_WORKFLOW = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml$")
_CI_FILE = re.compile(r"^[A-Za-z0-9._/-]+\.ya?ml$")
_ENVIRONMENT = re.compile(r"^[^\x00-\x1f]{1,255}$")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")
# Claims a generic publisher may not pin: they are checked by verification itself,
# and matching on them would say nothing about *which* CI job sent the token.
_RESERVED_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "jti"}


class InvalidPublisher(ValueError):
    """A publisher's settings that are malformed, duplicate or not allowed."""


@dataclass(frozen=True)
class PublisherSpec:
    """A publisher's identity before it is stored: kind, issuer, claims and keys."""

    kind: str
    issuer: str
    claims: dict[str, Any]
    jwks_url: str | None = None
    static_keys: dict[str, Any] | None = None


def _https_url(url: str, what: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    # Keys fetched over plain HTTP could be swapped by anyone on the path, which
    # would let them sign tokens for every publisher of the issuer.
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidPublisher(f"{what} must be an https:// URL, not {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidPublisher(f"{what} must have no query, fragment or credentials: {url!r}")
    return url.rstrip("/") if what == "The issuer" else url


def github_spec(
    issuer: str,
    repository: str,
    workflow: str,
    environment: str = "",
    owner_id: str = "",
) -> PublisherSpec:
    owner, sep, name = repository.strip().partition("/")
    if not sep or not _GITHUB_OWNER.match(owner) or not _GITHUB_REPO.match(name):
        raise InvalidPublisher(
            f"GitHub repository {repository!r} is not of the form owner/repository"
        )
    workflow = workflow.strip()
    if not _WORKFLOW.match(workflow):
        raise InvalidPublisher(
            f"Workflow {workflow!r} must be a file name in .github/workflows ending in"
            " .yml or .yaml (just the name, e.g. release.yml)"
        )
    claims: dict[str, Any] = {
        "repository": f"{owner}/{name}",
        "repository_owner": owner,
        "workflow": workflow,
    }
    owner_id = owner_id.strip()
    if owner_id:
        if not owner_id.isdigit():
            raise InvalidPublisher(f"GitHub owner id {owner_id!r} must be a number")
        claims["repository_owner_id"] = owner_id
    _add_environment(claims, environment)
    return PublisherSpec("github", issuer.rstrip("/"), claims)


def gitlab_spec(
    project_path: str,
    workflow_filepath: str,
    environment: str = "",
    issuer: str = GITLAB_ISSUER,
) -> PublisherSpec:
    project_path = project_path.strip().strip("/")
    if not _GITLAB_PATH.match(project_path):
        raise InvalidPublisher(
            f"GitLab project {project_path!r} is not of the form namespace/project"
        )
    workflow_filepath = workflow_filepath.strip().lstrip("/")
    if not _CI_FILE.match(workflow_filepath) or ".." in workflow_filepath.split("/"):
        raise InvalidPublisher(
            f"CI file {workflow_filepath!r} must be a path in the repository ending in"
            " .yml or .yaml (e.g. .gitlab-ci.yml)"
        )
    claims: dict[str, Any] = {"project_path": project_path, "ci_config_path": workflow_filepath}
    _add_environment(claims, environment)
    return PublisherSpec("gitlab", _https_url(issuer, "The issuer"), claims)


def generic_spec(
    issuer: str,
    claims: dict[str, str],
    jwks_url: str = "",
    static_keys: dict[str, Any] | None = None,
) -> PublisherSpec:
    issuer = _https_url(issuer, "The issuer")
    if not claims:
        raise InvalidPublisher(
            "A generic OIDC publisher needs at least one claim to match (such as sub),"
            " or every job of that issuer could publish"
        )
    checked: dict[str, Any] = {}
    for name, value in claims.items():
        if not _CLAIM_NAME.match(name):
            raise InvalidPublisher(f"Claim name {name!r} is not valid")
        if name in _RESERVED_CLAIMS:
            raise InvalidPublisher(
                f"Claim {name!r} is checked by verification and cannot be pinned"
            )
        if not isinstance(value, str) or not value:
            raise InvalidPublisher(f"Claim {name!r} needs a non-empty value")
        checked[name] = value
    url = _https_url(jwks_url, "The JWKS URL") if jwks_url.strip() else None
    if url is not None and static_keys is not None:
        raise InvalidPublisher("Give either a JWKS URL or static keys, not both")
    if static_keys is not None:
        keys = static_keys.get("keys") if isinstance(static_keys, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
            raise InvalidPublisher('Static keys must be a JWKS: {"keys": [ ... ]}')
        if not usable_keys(static_keys):
            raise InvalidPublisher("None of the static keys is an RSA or P-256 public key")
    return PublisherSpec("oidc", issuer, checked, url, static_keys)


def _add_environment(claims: dict[str, Any], environment: str) -> None:
    environment = environment.strip()
    if environment:
        if not _ENVIRONMENT.match(environment):
            raise InvalidPublisher(f"Environment {environment!r} is not valid")
        claims["environment"] = environment


def key_source_of(publisher: PublisherRow) -> str:
    """Which keys verify this publisher's tokens (publishers sharing one share keys).

    Static keys belong to their publisher alone: otherwise anyone could add a
    publisher with their own keys for a well-known issuer and sign tokens that
    match someone else's publisher.
    """
    if publisher.static_keys is not None:
        return f"static:{publisher.id}"
    if publisher.jwks_url:
        return f"jwks:{publisher.jwks_url}"
    return f"discovery:{publisher.issuer}"


def _ref_path(ref: object) -> str | None:
    """``owner/repo/.github/workflows/x.yml`` from ``...x.yml@refs/heads/main``."""
    if not isinstance(ref, str) or "@" not in ref:
        return None
    return ref.rsplit("@", 1)[0]


def matches(publisher: PublisherRow, claims: dict[str, Any]) -> bool:
    """Whether a verified token's claims name this publisher's CI identity."""
    want = publisher.claims
    if publisher.kind == "github":
        # GitHub owner and repository names are case-insensitive.
        repository = str(claims.get("repository", ""))
        if repository.lower() != str(want["repository"]).lower():
            return False
        if str(claims.get("repository_owner", "")).lower() != str(want["repository_owner"]).lower():
            return False
        if "repository_owner_id" in want and str(claims.get("repository_owner_id", "")) != str(
            want["repository_owner_id"]
        ):
            return False
        # The job's own workflow file (job_workflow_ref), so a reusable workflow
        # from another repository cannot stand in for the configured one.
        ref = claims.get("job_workflow_ref", claims.get("workflow_ref"))
        path = _ref_path(ref)
        expected = f"{want['repository']}/.github/workflows/{want['workflow']}"
        if path is None or path.lower() != expected.lower():
            return False
    elif publisher.kind == "gitlab":
        if str(claims.get("project_path", "")).lower() != str(want["project_path"]).lower():
            return False
        host = urlsplit(publisher.issuer).netloc
        ref = _ref_path(claims.get("ci_config_ref_uri"))
        expected = f"{host}/{want['project_path']}//{want['ci_config_path']}"
        if ref is None or ref.lower() != expected.lower():
            return False
    else:
        return all(claims.get(name) == value for name, value in want.items())
    # Deployment environment names are case-insensitive on GitHub and GitLab.
    return "environment" not in want or (
        str(claims.get("environment", "")).lower() == str(want["environment"]).lower()
    )


def describe(publisher: PublisherRow) -> str:
    """One line a person can read: which CI job this publisher trusts."""
    c = publisher.claims
    if publisher.kind == "github":
        text = f"GitHub {c['repository']}, workflow {c['workflow']}"
    elif publisher.kind == "gitlab":
        text = f"GitLab {c['project_path']} ({publisher.issuer}), CI file {c['ci_config_path']}"
    else:
        pinned = ", ".join(f"{k}={v}" for k, v in sorted(c.items()))
        text = f"OIDC issuer {publisher.issuer}, {pinned}"
    if "environment" in c:
        text += f", environment {c['environment']}"
    return text


def _same(a: PublisherRow, spec: PublisherSpec) -> bool:
    return (
        a.kind == spec.kind
        and a.issuer == spec.issuer
        and a.claims == spec.claims
        and a.jwks_url == spec.jwks_url
        and a.static_keys == spec.static_keys
    )


def add_publisher(
    session: Session,
    spec: PublisherSpec,
    *,
    index: IndexRow,
    project: ProjectRow | None = None,
    pending_name: str | None = None,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
    reserved_issuers: tuple[str, ...] = (),
) -> PublisherRow:
    """Store a publisher for ``project``, or a pending one for ``pending_name``."""
    if spec.kind == "oidc" and spec.issuer in reserved_issuers:
        raise InvalidPublisher(
            f"{spec.issuer} has its own publisher kind: use it instead of a generic issuer"
        )
    if (project is None) == (pending_name is None):
        raise InvalidPublisher("A publisher is for either an existing project or a pending name")
    if project is not None:
        if project.index_id != index.id:
            raise InvalidPublisher("The project is not in that index")
        existing = session.scalars(
            select(PublisherRow).where(
                PublisherRow.project_id == project.id, PublisherRow.removed_at.is_(None)
            )
        ).all()
        name = project.normalized
    else:
        assert pending_name is not None
        try:
            validate_name(pending_name)
        except InvalidProjectName as exc:
            raise InvalidPublisher(f"Project name: {exc}") from exc
        name = normalize(pending_name)
        if actor is None:
            raise InvalidPublisher("A pending publisher needs the user who will own the project")
        if index.kind != "hosted":
            raise InvalidPublisher(f"Index {index.name!r} is not a hosted index")
        taken = session.scalars(
            select(ProjectRow.id).where(
                ProjectRow.index_id == index.id,
                ProjectRow.normalized == name,
                ProjectRow.deleted_at.is_(None),
            )
        ).first()
        if taken is not None:
            raise InvalidPublisher(
                f"Project {name!r} already exists in index {index.name!r}: add the publisher on"
                " the project's own page instead"
            )
        existing = session.scalars(
            select(PublisherRow).where(
                PublisherRow.index_id == index.id,
                PublisherRow.pending_name == name,
                PublisherRow.project_id.is_(None),
                PublisherRow.removed_at.is_(None),
            )
        ).all()
    if actor is not None:
        # The publisher will act on the actor's rights; uses re-check them
        # (tilsit.auth.oidc.authority), so a publisher is never born stale.
        reason = authority_refusal(session, actor, index, project)
        if reason is not None:
            raise InvalidPublisher(f"Cannot add this publisher: {reason}")
    if any(_same(row, spec) for row in existing):
        raise InvalidPublisher("This publisher is already configured for the project")
    row = PublisherRow(
        index_id=index.id,
        project_id=project.id if project is not None else None,
        pending_name=None if project is not None else name,
        kind=spec.kind,
        issuer=spec.issuer,
        claims=spec.claims,
        jwks_url=spec.jwks_url,
        static_keys=spec.static_keys,
        created_by=actor.id if actor is not None else None,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        "publisher.added",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=actor,
        index_id=index.id,
        project=name,
        detail={
            "publisher": row.id,
            "kind": row.kind,
            "pending": project is None,
            "identity": describe(row),
        },
    )
    return row


def remove_publisher(
    session: Session,
    publisher: PublisherRow,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> None:
    """Remove a publisher; tokens it minted stop working (the upload path checks)."""
    from datetime import UTC, datetime

    if publisher.removed_at is not None:
        raise InvalidPublisher("This publisher has already been removed")
    publisher.removed_at = datetime.now(UTC)
    name = publisher.pending_name
    if publisher.project_id is not None:
        project = session.get(ProjectRow, publisher.project_id)
        name = project.normalized if project is not None else None
    record_event(
        session,
        "publisher.removed",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=actor,
        index_id=publisher.index_id,
        project=name,
        detail={"publisher": publisher.id, "kind": publisher.kind, "identity": describe(publisher)},
    )
