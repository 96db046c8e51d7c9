"""Trusted publishing: CI jobs exchange their OIDC identity for a short-lived API token.

``publishers`` (who may publish what), ``verify`` (checking a JWT), ``jwks``
(issuers' keys, fetched and cached), ``mint`` (the exchange, once per token).
"""
