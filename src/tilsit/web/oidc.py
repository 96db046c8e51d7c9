"""Trusted publishing API under ``/_/oidc/``: what uv, pdm, twine and PyPA's action call.

- ``GET /_/oidc/audience`` → ``{"audience": ...}``: what the CI job asks its
  issuer to put in the token's ``aud``.
- ``POST /_/oidc/mint-token`` (and ``/_/oidc/github/mint-token``, the older
  path) with ``{"token": "<JWT>"}`` → ``{"success": true, "token", "expires"}``,
  or 422 ``{"message": "Token request failed", "errors": [{"code",
  "description"}]}`` with PyPI's codes.
- ``POST /_/oidc/burn-token`` with ``{"token": "<minted token>"}`` → 202: the
  client is done, the token is revoked.

No cookies, no CSRF: CI jobs call these with a JWT, never a browser.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tilsit.auth.oidc.mint import MintedToken, TokenRefused, burn, exchange
from tilsit.instance import Instance

__all__ = ["routes"]

# A JWT is a few kilobytes; anything much bigger is not a token request.
_MAX_BODY = 64 * 1024


def _instance(request: Request) -> Instance:
    instance: Instance = request.app.state.instance
    return instance


def _failed(code: str, description: str, status: int = 422) -> JSONResponse:
    return JSONResponse(
        {"message": "Token request failed", "errors": [{"code": code, "description": description}]},
        status_code=status,
    )


async def _json_token(request: Request) -> tuple[object, JSONResponse | None]:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > _MAX_BODY:
        return None, _failed("invalid-payload", f"The body is larger than {_MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            return None, _failed("invalid-payload", f"The body is larger than {_MAX_BODY} bytes")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return None, _failed("invalid-payload", 'The body must be JSON: {"token": "..."}')
    if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
        return None, _failed("invalid-payload", 'The body must be {"token": "<string>"}')
    return payload["token"], None


async def audience(request: Request) -> JSONResponse:
    return JSONResponse({"audience": _instance(request).settings.audience})


async def mint_token(request: Request) -> JSONResponse:
    token, error = await _json_token(request)
    if error is not None:
        return error
    instance = _instance(request)
    ip = request.client.host if request.client else ""

    def run() -> MintedToken:
        return exchange(instance.db, instance.settings, token, ip)

    try:
        minted = await anyio.to_thread.run_sync(run)
    except TokenRefused as refusal:
        response = _failed(refusal.code, refusal.description, refusal.status)
        if refusal.status == 503:
            response.headers["retry-after"] = "300"
        return response
    return JSONResponse(
        {"success": True, "token": minted.secret, "expires": int(minted.expires.timestamp())},
        headers={"cache-control": "no-store"},
    )


async def burn_token(request: Request) -> JSONResponse:
    token, error = await _json_token(request)
    if error is not None:
        return error
    instance = _instance(request)
    ip = request.client.host if request.client else ""
    ours = await anyio.to_thread.run_sync(lambda: burn(instance.db, token, ip))
    if not ours:
        return _failed("invalid-token", "This is not a token minted by trusted publishing")
    return JSONResponse({"message": "Accepted"}, status_code=202)


routes: list[BaseRoute] = [
    Route("/_/oidc/audience", audience, methods=["GET"]),
    Route("/_/oidc/mint-token", mint_token, methods=["POST"]),
    Route("/_/oidc/github/mint-token", mint_token, methods=["POST"]),
    Route("/_/oidc/burn-token", burn_token, methods=["POST"]),
]
