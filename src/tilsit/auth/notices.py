"""Security notices: mail to the account's confirmed address when its security changes.

A stolen session or password is used to change the address, the password or
the second factors, or to make an API token; the owner hears of each change at
the address they confirmed (the old one, for an address change), so a takeover
is not silent. The text names what changed, when and from where, and what to
do if it was not them. Nothing secret is ever in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CHANGES", "Notice", "notice_for"]

# What each change is called in the subject and the first line of the body.
CHANGES: dict[str, str] = {
    "email.changed": "The email address of your account was changed",
    "password.changed": "Your password was changed",
    "2fa.totp.added": "An authenticator app was added to your account",
    "2fa.totp.removed": "The authenticator app was removed from your account",
    "2fa.webauthn.added": "A passkey was added to your account",
    "2fa.webauthn.removed": "A passkey was removed from your account",
    "recovery.generated": "New recovery codes were made for your account",
    "token.created": "An API token was created for your account",
}


@dataclass(frozen=True)
class Notice:
    to: str
    subject: str
    body: str


def notice_for(
    change: str,
    *,
    to: str,
    user_name: str,
    ip: str,
    reset_url: str | None,
    detail: str = "",
    when: datetime | None = None,
) -> Notice:
    """The mail telling ``user_name`` at ``to`` that ``change`` happened."""
    headline = CHANGES[change]
    moment = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{headline}.",
        "",
        f"Account: {user_name}",
        f"When:    {moment}",
        f"From:    {ip or 'unknown address'}",
    ]
    if detail:
        lines.append(f"Detail:  {detail}")
    lines += [
        "",
        "If this was you, there is nothing to do.",
        "",
        "If it was not, someone else can act as you. Reset your password at",
        # None when the server has no trusted public address to link to.
        reset_url or "the 'Forgot your password?' page of your tilsit server",
        "(which ends every session), check the second factors and API tokens of",
        "your account, and tell your tilsit administrator.",
        "",
    ]
    # Short enough for one header line: a folded subject reads badly in some clients.
    return Notice(to=to, subject=f"[tilsit] {headline}", body="\n".join(lines))
