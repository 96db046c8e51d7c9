"""WebAuthn (passkeys and security keys) as a second factor, with the ``webauthn`` library.

Each ceremony has two halves: options (with a fresh random challenge) go to the
browser, and the challenge is kept server-side in the session's data; the
browser's answer is verified against that challenge, the relying party id and
the origin, then the challenge is dropped so it cannot be answered twice.

The relying party is the server's public address: ``settings.base_url`` when
set, else the address the request came to. The authenticator's signature
counter must go up on every use (unless the authenticator keeps none, when it
is always 0); a counter that does not is a cloned key, and is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tilsit.db.models import UserRow, WebAuthnCredentialRow

__all__ = [
    "CHALLENGE_KEY",
    "NewCredential",
    "PasskeyRefused",
    "RelyingParty",
    "authentication_options",
    "credential_id_of",
    "registration_options",
    "relying_party",
    "take_challenge",
    "verify_authentication",
    "verify_registration",
]

# Where the pending challenge lives in SessionRow.data.
CHALLENGE_KEY = "webauthn"
_CHALLENGE_LIFETIME = 300
_TIMEOUT_MS = 120_000


class PasskeyRefused(ValueError):
    """The browser's answer did not verify; the message says why."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str
    name: str = "tilsit"


@dataclass(frozen=True)
class NewCredential:
    credential_id: str
    public_key: bytes
    sign_count: int
    transports: list[str]


def relying_party(base_url: str, request_base: str) -> RelyingParty:
    """The relying party for ``base_url`` (a setting), else for the request's own address."""
    parts = urlsplit(base_url or request_base)
    if not parts.scheme or not parts.hostname:
        raise PasskeyRefused("The server's address is not known; set base_url.")
    return RelyingParty(id=parts.hostname, origin=f"{parts.scheme}://{parts.netloc}")


def _pending(purpose: str, challenge: bytes, user_id: int | None) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "challenge": bytes_to_base64url(challenge),
        "user": user_id,
        "expires": time.time() + _CHALLENGE_LIFETIME,
    }


def take_challenge(data: dict[str, Any], purpose: str, user_id: int | None) -> bytes:
    """Remove and return the pending challenge for ``purpose`` from session ``data``."""
    pending = data.pop(CHALLENGE_KEY, None)
    if (
        not isinstance(pending, dict)
        or pending.get("purpose") != purpose
        or pending.get("user") != user_id
        or not isinstance(pending.get("challenge"), str)
    ):
        raise PasskeyRefused("No passkey request is pending; start again.")
    if float(pending.get("expires", 0)) < time.time():
        raise PasskeyRefused("The passkey request expired; start again.")
    return base64url_to_bytes(pending["challenge"])


def _descriptors(credentials: list[WebAuthnCredentialRow]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for row in credentials:
        transports = []
        for name in row.transports or []:
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue  # a transport this library version does not know
        out.append(
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(row.credential_id), transports=transports or None
            )
        )
    return out


def registration_options(
    rp: RelyingParty, user: UserRow, existing: list[WebAuthnCredentialRow]
) -> tuple[str, dict[str, Any]]:
    """Options JSON for navigator.credentials.create(), and the session data to keep."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.name,
        # The user handle is opaque to the authenticator; the row id says nothing personal.
        user_id=f"tilsit:{user.id}".encode(),
        user_display_name=user.name,
        timeout=_TIMEOUT_MS,
        exclude_credentials=_descriptors(existing),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), _pending("register", options.challenge, user.id)


def _parse(body: Any) -> dict[str, Any]:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise PasskeyRefused("The passkey answer is not JSON.") from exc
    if not isinstance(body, dict):
        raise PasskeyRefused("The passkey answer is not a credential.")
    return body


def verify_registration(rp: RelyingParty, challenge: bytes, credential: Any) -> NewCredential:
    body = _parse(credential)
    try:
        verified = verify_registration_response(
            credential=body,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRefused(f"The new passkey did not verify: {exc}") from exc
    response = body.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[t for t in transports or [] if isinstance(t, str)][:10],
    )


def authentication_options(
    rp: RelyingParty, user_id: int, credentials: list[WebAuthnCredentialRow]
) -> tuple[str, dict[str, Any]]:
    """Options JSON for navigator.credentials.get(), and the session data to keep."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=_TIMEOUT_MS,
        allow_credentials=_descriptors(credentials),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), _pending("login", options.challenge, user_id)


def credential_id_of(credential: Any) -> str:
    body = _parse(credential)
    value = body.get("id")
    if not isinstance(value, str) or not value or len(value) > 1400:
        raise PasskeyRefused("The passkey answer names no credential.")
    return value


def verify_authentication(
    rp: RelyingParty, challenge: bytes, credential: Any, row: WebAuthnCredentialRow
) -> int:
    """Verify a login answer made with ``row``; returns the new signature count."""
    try:
        verified = verify_authentication_response(
            credential=_parse(credential),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=row.public_key,
            credential_current_sign_count=row.sign_count,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRefused(f"The passkey did not verify: {exc}") from exc
    return verified.new_sign_count
