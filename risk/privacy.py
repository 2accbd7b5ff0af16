"""Personal identifiers: national IDs are hashed (keyed) and masked; never stored or logged in clear."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import warnings

_DEV_KEY = "risk-dev-key-not-for-production"


@functools.cache
def _key() -> bytes:
    key = os.environ.get("RISK_ID_KEY")
    if not key:
        warnings.warn(
            "RISK_ID_KEY is not set: national IDs are hashed with the development key. "
            "Set a county secret in production.",
            stacklevel=3,
        )
        key = _DEV_KEY
    return key.encode()


def hash_national_id(national_id: str | None) -> str | None:
    """Keyed HMAC-SHA256 so equal IDs link across tables without the ID being recoverable."""
    if national_id is None or national_id == "":
        return None
    return hmac.new(_key(), national_id.strip().upper().encode(), hashlib.sha256).hexdigest()


def mask_national_id(national_id: str | None) -> str | None:
    """Keep region (first 6) and the last 4 characters, as printed lists in Chinese clinics do."""
    if not national_id:
        return None
    value = national_id.strip()
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    value = phone.strip()
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "****" + value[-4:]
