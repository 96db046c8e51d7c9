"""Verifying a CI job's OIDC token (a JWT) before it is exchanged for an API token.

What is accepted, and why:

- RS256 and ES256 only. The header is read before anything else and any other
  ``alg`` is refused, so ``none`` and HMAC (where a public key would be used as
  the shared secret) never reach a verifier.
- The issuer must equal the publisher's, character for character.
- The audience must be this server's alone: a token minted for several
  audiences could be replayed to any of them.
- ``exp``, ``iat`` and (when present) ``nbf`` are checked with 30 s of leeway
  for clock skew; ``iss``, ``aud``, ``exp``, ``iat`` and ``jti`` are required.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

__all__ = [
    "ALGORITHMS",
    "LEEWAY",
    "REQUIRED_CLAIMS",
    "TokenRefused",
    "read_header",
    "unverified_claims",
    "verify_token",
]

ALGORITHMS = ("RS256", "ES256")
LEEWAY = 30
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
# A JWT bigger than this is not a CI identity token.
MAX_TOKEN_LENGTH = 16 * 1024


class TokenRefused(Exception):
    """A token that cannot be exchanged; ``code`` is PyPI's error code for it."""

    def __init__(self, code: str, description: str, status: int = 422) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        # 422 for everything about the token; 503 when the server is paused.
        self.status = status


def read_header(token: str) -> dict[str, Any]:
    """The JOSE header, refused unless it names RS256/ES256 and a ``kid``."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused("invalid-token", f"The token is longer than {MAX_TOKEN_LENGTH} bytes")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRefused("invalid-token", f"The token is not a JWT: {exc}") from exc
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenRefused(
            "invalid-token",
            f"Signing algorithm {alg!r} is not accepted: only {', '.join(ALGORITHMS)}",
        )
    if "crit" in header:
        # No extension is understood here, so a token that demands one is refused
        # (RFC 7515 4.1.11), whatever the library version would do with it.
        raise TokenRefused("invalid-token", "The token's header marks extensions as critical")
    # Keys named by the token itself (jku, jwk, x5u, x5c) are never used: keys come
    # only from the publisher's issuer.
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 255:
        raise TokenRefused("invalid-token", "The token's header names no key ('kid')")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims, unverified: only to find which publishers' keys to try."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRefused("invalid-token", f"The token's claims cannot be read: {exc}") from exc
    if not isinstance(claims.get("iss"), str):
        raise TokenRefused("invalid-token", "The token has no issuer ('iss')")
    return claims


def _key_fits(alg: str, key: PyJWK) -> bool:
    public = key.key
    if alg == "RS256":
        return isinstance(public, RSAPublicKey) and public.key_size >= 2048
    return isinstance(public, EllipticCurvePublicKey) and isinstance(public.curve, SECP256R1)


def verify_token(token: str, key: PyJWK, *, issuer: str, audience: str) -> dict[str, Any]:
    """The verified claims, or :class:`TokenRefused` saying what is wrong."""
    alg = read_header(token)["alg"]
    if not _key_fits(alg, key):
        raise TokenRefused("invalid-token", f"The key named by the token cannot verify {alg}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRefused("invalid-token", "The token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenRefused("invalid-token", f"The token is not valid yet: {exc}") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenRefused(
            "invalid-token", f"The token is not for this server (audience {audience!r})"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRefused("invalid-token", "The token's issuer does not match") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused("invalid-token", f"The token lacks a required claim: {exc}") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenRefused("invalid-token", "The token's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise TokenRefused("invalid-token", f"The token is not valid: {exc}") from exc
    aud = claims["aud"]
    if not (aud == audience or (isinstance(aud, list) and aud == [audience])):
        raise TokenRefused(
            "invalid-token",
            f"The token names other audiences besides this server ({audience!r}): a token"
            " must be minted for this server alone",
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise TokenRefused("invalid-token", "The token's 'jti' is not a short string")
    if claims.get("event_name") == "pull_request_target":
        # Refused for every kind, not just GitHub: such a job runs with the target
        # repository's identity on code from an outside pull request.
        raise TokenRefused(
            "invalid-publisher",
            "Tokens from 'pull_request_target' workflows are not accepted: they run with the"
            " repository's identity for code from an outside pull request",
        )
    return claims
