"""Uploads need a confirmed email address, as on PyPI.

An address that was confirmed is how the server reaches an uploader (password
resets, security notices); an account made by sign-up and never confirmed may
belong to anyone. The rule (``require_verified_email_for_upload``) is "on",
"off" or "auto": on when the server sends mail (``smtp_host`` is set), because
a server that only writes mail to its outbox gives users no way to confirm.

Not subject to it:

- tokens minted by trusted publishing, which act for a CI identity, not a user;
- administrators, whom the operator appoints (``tilsit user create --admin``,
  often with no address at all) and who can reach the operator another way.
"""

from __future__ import annotations

from tilsit.config import Settings
from tilsit.db.models import UserRow

__all__ = ["email_refusal", "verified_email_required"]


def verified_email_required(settings: Settings) -> bool:
    rule = settings.require_verified_email_for_upload
    if rule == "auto":
        return bool(settings.smtp_host)
    return rule == "on"


def email_refusal(user: UserRow | None, required: bool) -> str | None:
    """Why ``user`` may not upload for want of a confirmed address, or None if they may.

    A disabled account is left to the check that refuses it as disabled.
    """
    if not required or user is None or user.is_admin or not user.is_active:
        return None
    if user.email and user.email_verified_at is not None:
        return None
    what = f"{user.email} is not confirmed yet" if user.email else "your account has no address"
    # The way out comes first: the HTTP reason phrase (what twine prints) keeps 200 characters.
    return (
        "Uploads need a confirmed email address: confirm yours on your account page,"
        f" /account/, then upload again ({what}; setting require_verified_email_for_upload)"
    )
