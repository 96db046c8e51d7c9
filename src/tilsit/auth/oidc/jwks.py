"""Issuers' signing keys: fetched over HTTPS, cached in the database, refreshed rarely.

Keys come from the issuer's discovery document
(``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), from a JWKS URL
configured on a generic publisher, or from static keys stored on the publisher.

Fetched keys are cached in :class:`JWKSCacheRow`, keyed by where they came from,
so every server process shares them. A source is fetched at most once per
:data:`REFRESH_INTERVAL`, also when a token names a ``kid`` that is not cached:
a flood of tokens with made-up ``kid`` s costs at most one fetch a minute. The
right to fetch is claimed in a write transaction before the fetch, so concurrent
requests (and workers) do not fetch side by side.

Only HTTPS is spoken. Which CAs are trusted is the system's (``SSL_CERT_FILE``
is honoured) or the ``oidc_ca_bundle`` setting's.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError
from sqlalchemy.exc import IntegrityError

from tilsit.db.engine import Database
from tilsit.db.models import JWKSCacheRow

__all__ = [
    "REFRESH_INTERVAL",
    "KeySet",
    "KeysUnavailable",
    "fetch_json",
    "find_key",
    "ssl_context",
    "usable_keys",
]

REFRESH_INTERVAL = timedelta(seconds=60)
# How long a request waits for another request's fetch of the same keys to land.
_WAIT_FOR_FETCH = 10.0
_MAX_DOCUMENT = 512 * 1024
_TIMEOUT = 10.0


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched or read."""


@dataclass(frozen=True)
class KeySet:
    """Where a publisher's keys are: a cache key and how to fetch them (or the keys)."""

    cache_key: str
    issuer: str
    jwks_url: str | None = None
    static: dict[str, Any] | None = None


def ssl_context(ca_bundle: str = "") -> ssl.SSLContext:
    """The TLS trust for issuers: the system's CAs (and ``SSL_CERT_FILE``) or a bundle."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl.create_default_context()


def fetch_json(url: str, context: ssl.SSLContext) -> dict[str, Any]:
    """GET a small JSON object over HTTPS: no redirects, capped size, short timeout."""
    if urlsplit(url).scheme != "https":
        raise KeysUnavailable(f"refusing to fetch keys over anything but https: {url}")
    try:
        with (
            httpx.Client(
                verify=context, timeout=_TIMEOUT, follow_redirects=False, trust_env=False
            ) as client,
            # Uncompressed only: httpx inflates each network read whole, so a compressed
            # body of a few kilobytes could become tens of megabytes before the cap saw it.
            client.stream(
                "GET", url, headers={"accept": "application/json", "accept-encoding": "identity"}
            ) as response,
        ):
            if response.status_code != 200:
                raise KeysUnavailable(f"{url} answered HTTP {response.status_code}")
            coding = response.headers.get("content-encoding", "").strip().lower()
            if coding not in ("", "identity"):
                raise KeysUnavailable(
                    f"{url} sent a body in Content-Encoding {coding[:40]!r}, which was not"
                    " asked for (identity only)"
                )
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > _MAX_DOCUMENT:
                    raise KeysUnavailable(f"{url} sent more than {_MAX_DOCUMENT} bytes")
    except httpx.HTTPError as exc:
        raise KeysUnavailable(f"could not fetch {url}: {exc}") from exc
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise KeysUnavailable(f"{url} did not send JSON") from exc
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url} did not send a JSON object")
    return document


def _fetch_keys(source: KeySet, context: ssl.SSLContext) -> dict[str, Any]:
    url = source.jwks_url
    if url is None:
        discovery = fetch_json(f"{source.issuer}/.well-known/openid-configuration", context)
        # The document must speak for the issuer it was fetched from.
        if discovery.get("issuer") != source.issuer:
            raise KeysUnavailable(
                f"the discovery document of {source.issuer} names issuer"
                f" {discovery.get('issuer')!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailable(f"the discovery document of {source.issuer} has no jwks_uri")
        url = jwks_uri
    document = fetch_json(url, context)
    if not isinstance(document.get("keys"), list):
        raise KeysUnavailable(f"{url} is not a JWKS (no 'keys' list)")
    return {"keys": document["keys"]}


def usable_keys(jwks: dict[str, Any]) -> dict[str, PyJWK]:
    """The RSA and P-256 public signing keys of a JWKS, by ``kid``."""
    found: dict[str, PyJWK] = {}
    for entry in jwks.get("keys", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "RSA":
            algorithm = "RS256"
        elif entry.get("kty") == "EC" and entry.get("crv") == "P-256":
            algorithm = "ES256"
        else:
            continue
        if entry.get("alg", algorithm) != algorithm or "d" in entry:
            continue  # a key for another algorithm, or a private key published by mistake
        try:
            found[entry["kid"]] = PyJWK(entry, algorithm)
        except PyJWKError:
            continue
    return found


def _cached(db: Database, key: str) -> tuple[dict[str, Any], datetime | None]:
    with db.read() as session:
        row = session.get(JWKSCacheRow, key)
        if row is None:
            return {}, None
        return dict(row.keys), row.fetched_at


def _claim_fetch(db: Database, key: str, now: datetime) -> bool:
    """Take the right to fetch ``key`` now; False if it was fetched (or claimed) lately."""
    try:
        with db.write() as session:
            row = session.get(JWKSCacheRow, key)
            if row is None:
                session.add(JWKSCacheRow(issuer=key, keys={"fetching": True}, fetched_at=now))
                return True
            if now - row.fetched_at < REFRESH_INTERVAL:
                return False
            row.fetched_at = now
            row.keys = {**row.keys, "fetching": True}
            return True
    except IntegrityError:
        return False  # another process inserted the row first: it is fetching


def _store(db: Database, key: str, keys: dict[str, Any] | None) -> None:
    with db.write() as session:
        row = session.get(JWKSCacheRow, key)
        if row is None:
            return
        if keys is None:
            # The fetch failed: keep the old keys, and let the minute run out.
            row.keys = {k: v for k, v in row.keys.items() if k != "fetching"}
        else:
            row.keys = keys


def find_key(
    db: Database,
    source: KeySet,
    kid: str,
    context: ssl.SSLContext,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PyJWK | None:
    """The key ``kid`` of ``source``, fetching the keys if allowed; None if unknown."""
    if source.static is not None:
        return usable_keys(source.static).get(kid)
    keys, fetched_at = _cached(db, source.cache_key)
    found = usable_keys(keys).get(kid)
    if found is not None:
        return found
    if _claim_fetch(db, source.cache_key, now()):
        fetched_at = now()
        try:
            fresh = _fetch_keys(source, context)
        except KeysUnavailable:
            _store(db, source.cache_key, None)
            raise
        _store(db, source.cache_key, fresh)
        return usable_keys(fresh).get(kid)
    # Someone else fetched lately or is fetching now: wait for an in-flight fetch
    # to land rather than fail a good token that arrived a moment too soon.
    keys, fetched_at = _cached(db, source.cache_key)
    deadline = time.monotonic() + _WAIT_FOR_FETCH
    while (
        keys.get("fetching")
        and fetched_at is not None
        and now() - fetched_at < timedelta(seconds=_WAIT_FOR_FETCH + _TIMEOUT)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
        keys, fetched_at = _cached(db, source.cache_key)
    return usable_keys(keys).get(kid)
