"""The server's public address for links that leave the request: mail links, passkeys.

A request's ``Host`` header is whatever its sender wrote. A link built from it
and mailed to someone else (a password reset, an address confirmation) sends
that someone, and the secret in the link, to the sender's host: ask a reset
for the victim's address with ``Host: evil.example`` and the victim is mailed
a link to evil.example. So such links are built here only, from the
``base_url`` setting, or from the request's host when it is listed in
``allowed_hosts`` (exactly, port included); with neither set there is no safe
address, and account mail that needs a link is refused (:class:`NoPublicAddress`)
with the reason for the operator in the log, ``/_/health`` and the start-up text.

Uses of the request's address that go back only to the sender (the example
commands on the tokens page, the install hint on the home page) stay as they
are: a forged Host only misleads the one who forged it.
"""

from __future__ import annotations

from tilsit.config import Settings

__all__ = [
    "HostNotAllowed",
    "NoPublicAddress",
    "allowed_hosts",
    "mail_links_warning",
    "public_base",
]


class NoPublicAddress(Exception):
    """Neither base_url nor allowed_hosts is set: no link can be built safely."""

    status = 503
    user_message = (
        "This server cannot send links by mail yet: its administrator has not set its"
        " public address (the base_url setting). Please tell them; until then an"
        " administrator can set a password with `tilsit user set-password`."
    )


class HostNotAllowed(NoPublicAddress):
    """The request named a host that is not in allowed_hosts."""

    status = 400
    user_message = (
        "This server sends links by mail only when it is reached at one of its own"
        " addresses, and the address in this request is not one of them."
    )


def allowed_hosts(settings: Settings) -> list[str]:
    """The ``allowed_hosts`` setting as a list (comma or space separated, lower-cased)."""
    return [h for h in settings.allowed_hosts.replace(",", " ").lower().split() if h]


def public_base(settings: Settings, host: str, scheme: str) -> str:
    """The origin links are built on (no trailing slash); raises :class:`NoPublicAddress`.

    ``host`` and ``scheme`` are the request's (its Host header and URL scheme).
    """
    if settings.base_url:
        return settings.base_url.rstrip("/")
    hosts = allowed_hosts(settings)
    if not hosts:
        raise NoPublicAddress(
            "no link built: neither base_url nor allowed_hosts is set, so the server has"
            f" no public address it can trust (the request said Host {host[:100]!r})"
        )
    if host.strip().lower() not in hosts:
        raise HostNotAllowed(
            f"no link built: Host {host[:100]!r} is not in allowed_hosts ({', '.join(hosts)})"
        )
    return f"{scheme}://{host.strip().lower()}"


def mail_links_warning(settings: Settings) -> str | None:
    """What the operator should know when account mail with links is off, else None."""
    if settings.base_url or allowed_hosts(settings):
        return None
    return (
        "account mail with links (password reset, address confirmation) is off: set base_url"
        " (or allowed_hosts), since links built from a request's Host header could point"
        " to another site"
    )
