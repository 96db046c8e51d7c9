"""The token exchange against the in-process app: the attack table and the happy paths.

Each row of the attack table is a token a CI job (or an attacker) might send,
and the status and PyPI error code it must get back.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio.from_thread
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.oidc.conftest import (
    AUDIENCE,
    Minted,
    mint,
    octo_spec,
    publisher_for,
    user_token,
)
from tests.oidc.issuer import LocalIssuer
from tests.uploads import upload
from tilsit.auth.oidc.publishers import generic_spec
from tilsit.config import Settings
from tilsit.db.models import AuditEventRow, TokenRow
from tilsit.instance import Instance, open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(issuer: LocalIssuer) -> str:
    header = _b64(json.dumps({"alg": "none", "kid": "rsa-1", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(issuer.claims(aud=AUDIENCE)).encode())}."


def _hs256_with_public_key(issuer: LocalIssuer) -> str:
    # The classic key-confusion forgery: the issuer's *public* PEM as an HMAC secret.
    header = _b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(issuer.claims(aud=AUDIENCE)).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(issuer.public_pem(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _signed_with_header(issuer: LocalIssuer, header: dict[str, Any]) -> str:
    """A correctly RS256-signed token with a header PyJWT would not write itself."""
    encoded = _b64(json.dumps(header).encode())
    payload = _b64(json.dumps(issuer.claims(aud=AUDIENCE)).encode())
    signing_input = f"{encoded}.{payload}".encode()
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, issuer.rsa_key)
    return f"{encoded}.{payload}.{_b64(signature)}"


def _now() -> int:
    return int(time.time())


# (case, token maker, expected status, expected code: None means accepted)
ATTACKS: list[tuple[str, Callable[[LocalIssuer], str], int, str | None]] = [
    ("good RS256", lambda i: i.token(aud=AUDIENCE), 200, None),
    ("good ES256", lambda i: i.token(alg="ES256", aud=AUDIENCE), 200, None),
    ("wrong aud", lambda i: i.token(aud="https://pypi.org"), 422, "invalid-token"),
    ("multiple aud", lambda i: i.token(aud=[AUDIENCE, "sigstore"]), 422, "invalid-token"),
    ("aud list of one", lambda i: i.token(aud=[AUDIENCE]), 200, None),
    ("wrong iss", lambda i: i.token(aud=AUDIENCE, iss=i.url + "/evil"), 422, "invalid-publisher"),
    (
        "expired past 30 s leeway",
        lambda i: i.token(aud=AUDIENCE, iat=_now() - 400, nbf=_now() - 400, exp=_now() - 45),
        422,
        "invalid-token",
    ),
    (
        "expired within leeway",
        lambda i: i.token(aud=AUDIENCE, iat=_now() - 400, nbf=_now() - 400, exp=_now() - 10),
        200,
        None,
    ),
    ("future nbf", lambda i: i.token(aud=AUDIENCE, nbf=_now() + 120), 422, "invalid-token"),
    ("future iat", lambda i: i.token(aud=AUDIENCE, iat=_now() + 120), 422, "invalid-token"),
    ("alg none", _unsigned, 422, "invalid-token"),
    ("HS256 signed with the public key", _hs256_with_public_key, 422, "invalid-token"),
    (
        "crit header",
        lambda i: _signed_with_header(i, {"alg": "RS256", "kid": "rsa-1", "crit": ["b64"]}),
        422,
        "invalid-token",
    ),
    ("unknown kid", lambda i: i.token(aud=AUDIENCE, kid="made-up"), 422, "invalid-token"),
    ("no jti", lambda i: i.token(aud=AUDIENCE, jti=None), 422, "invalid-token"),
    ("no exp", lambda i: i.token(aud=AUDIENCE, exp=None), 422, "invalid-token"),
    (
        "pull_request_target",
        lambda i: i.token(aud=AUDIENCE, event_name="pull_request_target"),
        422,
        "invalid-publisher",
    ),
    (
        "other workflow",
        lambda i: i.token(
            aud=AUDIENCE,
            job_workflow_ref="octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
        ),
        422,
        "invalid-publisher",
    ),
    (
        "reusable workflow of another repository",
        lambda i: i.token(
            aud=AUDIENCE,
            job_workflow_ref="evil-org/tools/.github/workflows/release.yml@refs/heads/main",
        ),
        422,
        "invalid-publisher",
    ),
    (
        "other repository",
        lambda i: i.token(aud=AUDIENCE, repository="octo-org/other-repo"),
        422,
        "invalid-publisher",
    ),
    (
        "resurrected owner name (other owner id)",
        lambda i: i.token(aud=AUDIENCE, repository_owner_id="999999"),
        422,
        "invalid-publisher",
    ),
    ("signature tampered", lambda i: i.token(aud=AUDIENCE)[:-6] + "AAAAAA", 422, "invalid-token"),
    ("not a JWT", lambda i: "not-a-jwt", 422, "invalid-token"),
]


@pytest.fixture
def octo(client: AppClient, instance: Instance, issuer: LocalIssuer) -> int:
    """Project octo-pkg of alice, with a GitHub publisher for octo-org/octo-repo."""
    token = user_token(instance.db, "alice")
    assert upload(client, make_wheel("octo-pkg", "1.0"), token).status_code == 200
    return publisher_for(instance.db, octo_spec(issuer, owner_id="424242"), project="octo-pkg")


@pytest.mark.parametrize(("case", "make", "status", "code"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_table(
    client: AppClient,
    issuer: LocalIssuer,
    octo: int,
    case: str,
    make: Callable[[LocalIssuer], str],
    status: int,
    code: str | None,
) -> None:
    result = mint(client, make(issuer))
    assert (result.status, result.code) == (status, code), result.body
    if status == 200:
        assert result.body["success"] is True
        assert str(result.body["token"]).startswith("tilsit-")
    else:
        assert result.body["message"] == "Token request failed"
        assert "token" not in result.body


def test_replayed_jti_is_refused(client: AppClient, issuer: LocalIssuer, octo: int) -> None:
    token = issuer.token(aud=AUDIENCE)
    assert mint(client, token).status == 200
    again = mint(client, token, "/_/oidc/github/mint-token")
    assert (again.status, again.code) == (422, "invalid-reuse-token")
    # A token with the same jti but otherwise new is the same identity: refused too.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    twin = mint(client, issuer.token(aud=AUDIENCE, jti=jti))
    assert (twin.status, twin.code) == (422, "invalid-reuse-token")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid-payload"),
        (b'{"token": 5}', "invalid-payload"),
        (b"[]", "invalid-payload"),
    ],
)
def test_bad_payloads(client: AppClient, octo: int, body: bytes, code: str) -> None:
    response = client.post("/_/oidc/mint-token", content=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == code


def test_audience_endpoint(client: AppClient) -> None:
    assert client.get("/_/oidc/audience").json() == {"audience": AUDIENCE}


def test_refusals_and_uses_are_audited(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    assert mint(client, issuer.token(aud="elsewhere")).status == 422
    assert mint(client, issuer.token(aud=AUDIENCE)).status == 200
    with instance.db.read() as session:
        actions = [e.action for e in session.scalars(select(AuditEventRow))]
    assert "publisher.refused" in actions
    assert "publisher.used" in actions
    assert "token.created" in actions
    assert "publisher.added" in actions


def test_minted_token_is_scoped_to_its_project(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    # Another project of the same owner, with its own publisher (another workflow).
    alice = user_token(instance.db, "alice")
    assert upload(client, make_wheel("other-pkg", "1.0"), alice).status_code == 200
    minted = mint(client, issuer.token(aud=AUDIENCE))
    secret = str(minted.body["token"])
    with instance.db.read() as session:
        row = session.scalars(select(TokenRow).where(TokenRow.publisher_id == octo)).one()
        assert row.user_id is None
        assert row.projects == ["octo-pkg"]
        assert row.expires_at is not None
        lifetime = row.expires_at.timestamp() - time.time()
    assert 880 < lifetime <= 900
    assert abs(int(str(minted.body["expires"])) - (time.time() + 900)) < 20
    refused = upload(client, make_wheel("other-pkg", "2.0"), secret)
    assert refused.status_code == 403, refused.text
    # ... nor create a project of its own.
    assert upload(client, make_wheel("brand-new", "1.0"), secret).status_code == 403
    assert upload(client, make_wheel("octo-pkg", "2.0"), secret).status_code == 200


def test_burn_revokes_the_minted_token(client: AppClient, issuer: LocalIssuer, octo: int) -> None:
    secret = str(mint(client, issuer.token(aud=AUDIENCE)).body["token"])
    burned = client.post("/_/oidc/burn-token", json={"token": secret})
    assert burned.status_code == 202
    assert upload(client, make_wheel("octo-pkg", "3.0"), secret).status_code == 403
    # Burning again is harmless; a token that is not ours is refused.
    assert client.post("/_/oidc/burn-token", json={"token": secret}).status_code == 202
    stranger = client.post("/_/oidc/burn-token", json={"token": "tilsit-" + "x" * 43})
    assert stranger.status_code == 422


def test_removed_publisher_stops_minting_and_uploading(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    from tilsit.auth.oidc.publishers import remove_publisher
    from tilsit.db.models import PublisherRow

    secret = str(mint(client, issuer.token(aud=AUDIENCE)).body["token"])
    with instance.db.write() as session:
        row = session.get(PublisherRow, octo)
        assert row is not None
        remove_publisher(session, row, actor_name="test")
    assert upload(client, make_wheel("octo-pkg", "4.0"), secret).status_code == 403
    after = mint(client, issuer.token(aud=AUDIENCE))
    assert (after.status, after.code) == (422, "invalid-publisher")


def test_environment_pins_the_publisher(
    client: AppClient, instance: Instance, issuer: LocalIssuer
) -> None:
    alice = user_token(instance.db, "alice")
    assert upload(client, make_wheel("env-pkg", "1.0"), alice).status_code == 200
    publisher_for(instance.db, octo_spec(issuer, environment="release"), project="env-pkg")
    missing = mint(client, issuer.token(aud=AUDIENCE))
    assert (missing.status, missing.code) == (422, "invalid-publisher")
    other = mint(client, issuer.token(aud=AUDIENCE, environment="staging"))
    assert (other.status, other.code) == (422, "invalid-publisher")
    assert mint(client, issuer.token(aud=AUDIENCE, environment="Release")).status == 200


def test_two_equal_publishers_are_ambiguous(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    alice = user_token(instance.db, "alice")
    assert upload(client, make_wheel("twin-pkg", "1.0"), alice).status_code == 200
    publisher_for(instance.db, octo_spec(issuer), project="twin-pkg")
    result = mint(client, issuer.token(aud=AUDIENCE))
    assert (result.status, result.code) == (422, "ambiguous-publisher")


def test_static_keys_vouch_only_for_their_own_publisher(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    """An attacker's generic publisher with its own keys for the same issuer URL."""
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(attacker_key.public_key()))
    jwk.update(kid="rsa-1", alg="RS256", use="sig")
    mallory = user_token(instance.db, "mallory")
    assert upload(client, make_wheel("mallory-pkg", "1.0"), mallory).status_code == 200
    spec = generic_spec(issuer.url, {"sub": "mallory"}, static_keys={"keys": [jwk]})
    publisher_for(instance.db, spec, project="mallory-pkg", owner="mallory")
    forged = jwt.encode(
        issuer.claims(aud=AUDIENCE), attacker_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    result = mint(client, forged)
    assert (result.status, result.code) == (422, "invalid-publisher")
    # The real issuer's token still reaches the real publisher.
    assert mint(client, issuer.token(aud=AUDIENCE)).status == 200
    # And mallory's own static keys work for mallory's own publisher.
    own = jwt.encode(
        issuer.claims(aud=AUDIENCE, sub="mallory"),
        attacker_key,
        algorithm="RS256",
        headers={"kid": "rsa-1"},
    )
    assert mint(client, own).status == 200


def test_pending_publisher_creates_the_project_once(
    client: AppClient, instance: Instance, issuer: LocalIssuer
) -> None:
    publisher_for(instance.db, octo_spec(issuer), pending="Fresh_Pkg", owner="carol")
    secret = str(mint(client, issuer.token(aud=AUDIENCE)).body["token"])
    assert upload(client, make_wheel("fresh-pkg", "1.0"), secret).status_code == 200
    with instance.db.read() as session:
        from tilsit.db.models import ProjectRow, PublisherRow, RoleRow, UserRow

        project = session.scalars(
            select(ProjectRow).where(ProjectRow.normalized == "fresh-pkg")
        ).one()
        publisher = session.scalars(select(PublisherRow)).one()
        assert publisher.project_id == project.id and publisher.pending_name is None
        role = session.scalars(select(RoleRow).where(RoleRow.project_id == project.id)).one()
        assert session.get(UserRow, role.user_id).name == "carol"  # type: ignore[union-attr]
        assert role.role == "Owner"
    # Now an ordinary publisher of that project.
    assert mint(client, issuer.token(aud=AUDIENCE)).status == 200


def test_pending_publisher_cannot_take_an_existing_project(
    client: AppClient, instance: Instance, issuer: LocalIssuer
) -> None:
    publisher_for(instance.db, octo_spec(issuer), pending="race-pkg", owner="carol")
    # The pending name is reserved: bob may not create it, but an administrator may.
    bob = user_token(instance.db, "bob")
    assert upload(client, make_wheel("race-pkg", "1.0"), bob).status_code == 403
    with instance.db.write() as session:
        from tilsit.index.manage import create_user

        create_user(session, "root", admin=True)
    root = user_token(instance.db, "root")
    assert upload(client, make_wheel("race-pkg", "1.0"), root).status_code == 200
    result = mint(client, issuer.token(aud=AUDIENCE))
    assert (result.status, result.code) == (422, "invalid-pending-publisher")


@pytest.fixture
def short_lived(settings: Settings) -> Iterator[AppClient]:
    """The same server, minting tokens that live 2 seconds."""
    install()
    inst = open_instance(dataclasses.replace(settings, trusted_token_lifetime=2))
    with anyio.from_thread.start_blocking_portal() as portal:
        app_client = AppClient(portal, TilsitApp(inst))
        yield app_client
        portal.call(app_client.http.aclose)
    inst.close()


def test_minted_token_expires_after_its_lifetime(
    short_lived: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    minted = mint(short_lived, issuer.token(aud=AUDIENCE))
    assert abs(int(str(minted.body["expires"])) - (time.time() + 2)) < 2
    secret = str(minted.body["token"])
    time.sleep(3)
    refused = upload(short_lived, make_wheel("octo-pkg", "5.0"), secret)
    assert refused.status_code == 403
    assert "expired" in refused.text


def test_jwks_flood_of_unknown_kids_fetches_at_most_once(
    client: AppClient, issuer: LocalIssuer, octo: int
) -> None:
    assert mint(client, issuer.token(aud=AUDIENCE)).status == 200
    assert issuer.jwks_fetches == 1
    for n in range(100):
        result = mint(client, issuer.token(aud=AUDIENCE, kid=f"unknown-{n}"))
        assert (result.status, result.code) == (422, "invalid-token")
    assert issuer.jwks_fetches == 1


def test_jwks_refetched_for_a_new_kid_after_a_minute(
    client: AppClient, instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    from datetime import timedelta

    from tilsit.db.models import JWKSCacheRow

    assert mint(client, issuer.token(aud=AUDIENCE, kid="rotated")).code == "invalid-token"
    assert issuer.jwks_fetches == 1
    # The issuer rotates in a new key; a minute later the unknown kid triggers a fetch.
    original: Any = issuer.jwks

    def rotated() -> dict[str, Any]:
        keys = original()
        extra = dict(keys["keys"][0], kid="rotated")
        return {"keys": [*keys["keys"], extra]}

    issuer.jwks = rotated  # type: ignore[method-assign]
    with instance.db.write() as session:
        for row in session.scalars(select(JWKSCacheRow)):
            row.fetched_at = row.fetched_at - timedelta(seconds=61)
    assert mint(client, issuer.token(aud=AUDIENCE, kid="rotated")).status == 200
    assert issuer.jwks_fetches == 2


def _summary(result: Minted) -> tuple[int, str | None]:
    return result.status, result.code


@pytest.mark.parametrize(
    ("switch", "status"),
    [
        ("read-only", 503),
        ("no-uploads", 503),
        ("no-trusted-publishing", 422),
    ],
)
def test_switches_refuse_the_exchange_without_spending_the_token(
    client: AppClient,
    instance: Instance,
    issuer: LocalIssuer,
    octo: int,
    switch: str,
    status: int,
) -> None:
    from tilsit.auth import switches

    token = issuer.token(aud=AUDIENCE)
    with instance.db.write() as session:
        switches.set_switch(session, switch, True, actor="test")
    refused = client.post("/_/oidc/mint-token", json={"token": token})
    assert refused.status_code == status, refused.text
    assert refused.json()["errors"][0]["code"] == "not-enabled"
    assert ("retry-after" in refused.headers) == (status == 503)
    with instance.db.read() as session:
        assert (
            session.scalars(select(TokenRow).where(TokenRow.publisher_id == octo)).first() is None
        )
    with instance.db.write() as session:
        switches.set_switch(session, switch, False, actor="test")
    # The refused token was not spent: the same job's retry is exchanged.
    assert mint(client, token).status == 200
