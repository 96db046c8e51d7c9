"""TUF settings from the server's settings, and the clock signing uses."""

from __future__ import annotations

from datetime import UTC, datetime

from tilsit.config import Settings
from tilsit.trust.keys import TrustSettings

__all__ = ["trust_settings", "utcnow"]


def trust_settings(settings: Settings) -> TrustSettings:
    return TrustSettings(
        bin_bits=settings.tuf_bin_bits,
        timestamp_expiry=settings.tuf_timestamp_expiry,
        snapshot_expiry=settings.tuf_snapshot_expiry,
        bins_expiry=settings.tuf_bins_expiry,
        targets_expiry=settings.tuf_targets_expiry,
        root_expiry=settings.tuf_root_expiry,
        grace=max(settings.tuf_grace, 3600),
        keep_versions=max(settings.tuf_keep_versions, 1),
    )


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
