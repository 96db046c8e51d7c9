"""A local OIDC issuer over HTTPS on 127.0.0.1, standing in for GitHub Actions.

It serves the discovery document, a JWKS with one RS256 and one ES256 key
(counting how often the JWKS is fetched), and the GitHub Actions token request
endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``): a GET with
``Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`` and ``audience=...``
answers ``{"value": "<JWT>"}`` for that audience, as a CI job would get.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.httpd import QuietHandler

REQUEST_TOKEN = "actions-request-token-for-tests"


class LocalIssuer:
    """Keys, a JWT factory and the HTTPS server; see the module docstring."""

    def __init__(self, directory: Path, ca: trustme.CA | None = None) -> None:
        self.ca = ca or trustme.CA()
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_pem = directory / "issuer-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.jwks_fetches = 0
        self.lock = threading.Lock()
        # What the token request endpoint puts in its tokens (besides aud, iat, ...).
        self.ci_claims: dict[str, Any] = {}
        self.ci_requests: list[str] = []
        issuer = self

        class Handler(QuietHandler):
            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._send(200, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
                elif url.path == "/jwks":
                    with issuer.lock:
                        issuer.jwks_fetches += 1
                    self._send(200, issuer.jwks())
                elif url.path == "/github-token":
                    if self.headers.get("authorization", "").lower() != f"bearer {REQUEST_TOKEN}":
                        self._send(401, {"message": "bad request token"})
                        return
                    audience = parse_qs(url.query).get("audience", [""])[0]
                    issuer.ci_requests.append(audience)
                    self._send(200, {"value": issuer.token(aud=audience, **issuer.ci_claims)})
                else:
                    self._send(404, {"message": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalIssuer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    @property
    def request_url(self) -> str:
        """ACTIONS_ID_TOKEN_REQUEST_URL: clients append ``&audience=...``."""
        return f"{self.url}/github-token?api-version=2.0"

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec-1", use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """GitHub Actions-shaped claims for ``octo-org/octo-repo``'s release.yml."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": "tilsit",
            "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
            "repository": "octo-org/octo-repo",
            "repository_owner": "octo-org",
            "repository_owner_id": "424242",
            "repository_id": "1234",
            "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
            "job_workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
            "event_name": "push",
            "ref": "refs/heads/main",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, *, alg: str = "RS256", kid: str | None = None, **overrides: Any) -> str:
        """A JWT signed by this issuer (``alg`` RS256 or ES256); claims as :meth:`claims`."""
        key: Any = self.rsa_key if alg == "RS256" else self.ec_key
        kid = kid or ("rsa-1" if alg == "RS256" else "ec-1")
        return jwt.encode(self.claims(**overrides), key, algorithm=alg, headers={"kid": kid})
