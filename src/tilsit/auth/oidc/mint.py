"""Exchanging a CI job's OIDC token for a short-lived API token, once.

The steps, in order:

1. read the header (RS256/ES256 and a ``kid``) and, unverified, the issuer;
2. for each source of keys among the publishers of that issuer, find the key
   and verify the token (:mod:`tilsit.auth.oidc.verify`), then match the
   verified claims against those publishers only: a publisher's keys never
   vouch for another publisher's identity;
3. check the publisher's standing: its project still exists (or, for a pending
   one, still does not), and the user who set it up still holds the right they
   lent it (:mod:`tilsit.auth.oidc.authority`; uploads check it again);
4. claim the token's ``(iss, jti)`` in a committed transaction of its own; the
   unique constraint and the single writer make the claim atomic, so of any
   number of concurrent exchanges of one token exactly one gets past here.
   The claim is kept after the token expires (it costs one row), so no leeway
   window or clean-up race can ever reopen it;
5. mint an API token scoped to the publisher's project and index, living
   ``trusted_token_lifetime`` seconds.

Every refusal is answered with PyPI's error codes and recorded in the audit log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tilsit.auth import switches
from tilsit.auth.audit import record_event
from tilsit.auth.oidc import jwks
from tilsit.auth.oidc.authority import publisher_refusal
from tilsit.auth.oidc.publishers import key_source_of, matches
from tilsit.auth.oidc.verify import TokenRefused, read_header, unverified_claims, verify_token
from tilsit.auth.tokens import PREFIX, InvalidToken, find_token
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import OIDCTokenUseRow, ProjectRow, PublisherRow, TokenRow

__all__ = ["MintedToken", "TokenRefused", "burn", "exchange"]


@dataclass(frozen=True)
class MintedToken:
    secret: str
    expires: datetime
    publisher_id: int
    project: str


def _candidates(db: Database, issuer: str) -> list[PublisherRow]:
    with db.read() as session:
        return list(
            session.scalars(
                select(PublisherRow)
                .where(PublisherRow.issuer == issuer, PublisherRow.removed_at.is_(None))
                .order_by(PublisherRow.id)
            )
        )


def _verified_matches(
    db: Database, settings: Settings, token: str, issuer: str, kid: str
) -> tuple[dict[str, Any], list[PublisherRow]]:
    """The verified claims and the publishers they match, per source of keys."""
    publishers = _candidates(db, issuer)
    if not publishers:
        raise TokenRefused("invalid-publisher", f"No trusted publisher uses issuer {issuer!r}")
    groups: dict[str, list[PublisherRow]] = {}
    for publisher in publishers:
        groups.setdefault(key_source_of(publisher), []).append(publisher)
    context = jwks.ssl_context(settings.oidc_ca_bundle)
    failure: TokenRefused | None = None
    verified: dict[str, Any] | None = None
    for cache_key, members in groups.items():
        first = members[0]
        source = jwks.KeySet(cache_key, issuer, first.jwks_url, first.static_keys)
        try:
            key = jwks.find_key(db, source, kid, context)
        except jwks.KeysUnavailable as exc:
            failure = TokenRefused("invalid-token", f"The issuer's keys are unavailable: {exc}")
            continue
        if key is None:
            failure = failure or TokenRefused(
                "invalid-token",
                f"The token is signed with key {kid!r}, which the issuer does not list",
            )
            continue
        try:
            claims = verify_token(token, key, issuer=issuer, audience=settings.audience)
        except TokenRefused as exc:
            failure = exc
            continue
        found = [p for p in members if matches(p, claims)]
        if found:
            return claims, found
        verified = claims
    if verified is not None:
        return verified, []
    assert failure is not None
    raise failure


def _choose(found: list[PublisherRow]) -> PublisherRow:
    if not found:
        raise TokenRefused(
            "invalid-publisher", "The token is valid but matches no trusted publisher"
        )
    # A publisher of an existing project wins over a pending one; among several,
    # the one pinned to a deployment environment is the more specific.
    live = [p for p in found if p.project_id is not None] or found
    pinned = [p for p in live if "environment" in p.claims]
    narrowed = pinned or live
    if len(narrowed) > 1:
        raise TokenRefused(
            "ambiguous-publisher",
            f"The token matches {len(narrowed)} trusted publishers; make them distinct"
            " (for example by environment)",
        )
    return narrowed[0]


def _claim_jti(db: Database, issuer: str, claims: dict[str, Any]) -> None:
    jti = claims["jti"]
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    try:
        with db.write() as session:
            taken = session.scalars(
                select(OIDCTokenUseRow.id).where(
                    OIDCTokenUseRow.issuer == issuer, OIDCTokenUseRow.jti == jti
                )
            ).first()
            if taken is not None:
                raise TokenRefused("invalid-reuse-token", "This token has already been exchanged")
            session.add(OIDCTokenUseRow(issuer=issuer, jti=jti, expires_at=expires))
    except IntegrityError as exc:
        # The unique (issuer, jti) constraint: another exchange claimed it first.
        raise TokenRefused("invalid-reuse-token", "This token has already been exchanged") from exc


def _refuse(
    db: Database, refusal: TokenRefused, ip: str, issuer: str | None, detail: dict[str, Any]
) -> None:
    with db.write() as session:
        record_event(
            session,
            "publisher.refused",
            actor_name="trusted publishing",
            ip=ip,
            detail={
                "code": refusal.code,
                "reason": refusal.description[:300],
                "issuer": (issuer or "")[:300],
                **detail,
            },
        )


def exchange(db: Database, settings: Settings, token: object, ip: str = "") -> MintedToken:
    """Verify ``token`` and mint an API token for the publisher it names."""
    issuer: str | None = None
    detail: dict[str, Any] = {}
    try:
        if not isinstance(token, str) or not token:
            raise TokenRefused("invalid-payload", 'The body must be {"token": "<OIDC token>"}')
        _check_switches(db)
        header = read_header(token)
        issuer = unverified_claims(token)["iss"]
        claims, found = _verified_matches(db, settings, token, issuer, header["kid"])
        detail = {"sub": str(claims.get("sub", ""))[:300]}
        publisher = _choose(found)
        detail["publisher"] = publisher.id
        with db.read() as session:
            _check_publisher(session, publisher)
        _claim_jti(db, issuer, claims)
    except TokenRefused as refusal:
        _refuse(db, refusal, ip, issuer, detail)
        raise
    return _mint(db, settings, publisher, claims, ip)


def _check_switches(db: Database) -> None:
    """Refuse before the token is looked at, so its ``jti`` is not spent and the
    job can retry with the same token once the switch is off."""
    with db.read() as session:
        if switches.enabled(session, switches.READ_ONLY) or switches.enabled(
            session, switches.NO_UPLOADS
        ):
            raise TokenRefused(
                "not-enabled", "Uploads are paused by an administrator; try again later", 503
            )
        if switches.enabled(session, switches.NO_TRUSTED_PUBLISHING):
            raise TokenRefused(
                "not-enabled", "Trusted publishing is turned off by an administrator"
            )


def _check_publisher(session: Any, publisher: PublisherRow) -> None:
    if publisher.project_id is None:
        # A pending publisher: its project must still not exist (someone else may
        # have created it since).
        taken = session.scalars(
            select(ProjectRow.id).where(
                ProjectRow.index_id == publisher.index_id,
                ProjectRow.normalized == publisher.pending_name,
            )
        ).first()
        if taken is not None:
            raise TokenRefused(
                "invalid-pending-publisher",
                f"Project {publisher.pending_name!r} already exists: a pending publisher can"
                " only create a new project",
            )
    # The user who set the publisher up must still hold the right they lent it
    # (the same check runs again when the minted token uploads).
    refusal = publisher_refusal(session, publisher)
    if refusal is not None:
        code = "invalid-publisher" if publisher.project_id else "invalid-pending-publisher"
        raise TokenRefused(code, refusal)


def _mint(
    db: Database, settings: Settings, publisher: PublisherRow, claims: dict[str, Any], ip: str
) -> MintedToken:
    secret = PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=settings.trusted_token_lifetime)
    with db.write() as session:
        if publisher.project_id is not None:
            project = session.get(ProjectRow, publisher.project_id)
            assert project is not None
            name = project.normalized
        else:
            assert publisher.pending_name is not None
            name = publisher.pending_name
        row = TokenRow(
            user_id=None,
            publisher_id=publisher.id,
            # Stored as tilsit.auth.tokens stores every token: the sha256 of the secret.
            token_hash=hashlib.sha256(secret.encode()).hexdigest(),
            display_prefix=secret[: len(PREFIX) + 6],
            description=f"trusted publishing: {publisher.kind} publisher #{publisher.id}",
            index_id=publisher.index_id,
            projects=[name],
            expires_at=expires,
        )
        session.add(row)
        actor = f"trusted publisher #{publisher.id} ({publisher.kind})"
        common = {"publisher": publisher.id, "sub": str(claims.get("sub", ""))[:300]}
        record_event(
            session,
            "publisher.used",
            actor_name=actor,
            ip=ip,
            index_id=publisher.index_id,
            project=name,
            detail={**common, "jti": str(claims["jti"])[:255]},
        )
        record_event(
            session,
            "token.created",
            actor_name=actor,
            ip=ip,
            index_id=publisher.index_id,
            project=name,
            detail={**common, "token": row.display_prefix, "expires": expires.isoformat()},
        )
    return MintedToken(secret, expires, publisher.id, name)


def burn(db: Database, secret: object, ip: str = "") -> bool:
    """Revoke a token minted by trusted publishing (clients do so once they are done).

    True when the token was one of ours (revoked now, or already revoked or
    expired); False when it is not a trusted-publishing token at all.
    """
    if not isinstance(secret, str):
        return False
    with db.write() as session:
        try:
            row = find_token(session, secret, check_live=False)
        except InvalidToken:
            return False
        if row.publisher_id is None:
            return False
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            record_event(
                session,
                "token.revoked",
                actor_name=f"trusted publisher #{row.publisher_id}",
                ip=ip,
                index_id=row.index_id,
                project=row.projects[0] if row.projects else None,
                detail={
                    "token": row.display_prefix,
                    "publisher": row.publisher_id,
                    "reason": "burned by the client after publishing",
                },
            )
    return True
