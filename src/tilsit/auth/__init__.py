"""Users and API tokens (2FA, sessions and trusted publishing build on these)."""
