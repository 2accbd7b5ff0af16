"""Personal identifiers: national IDs are hashed (keyed) and masked; never stored or logged in clear.

The hash key is the county secret `RISK_ID_KEY`. Without it nothing that hashes, publishes or serves IDs
runs, unless the development key is asked for explicitly (`risk --dev-id-key ...` or `RISK_DEV_ID_KEY=1`;
`risk demo` does so for its synthetic county); which key was used is recorded in run.json and summary.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os

from risk.errors import RiskUserError

log = logging.getLogger(__name__)

KEY_ENV = "RISK_ID_KEY"
DEV_KEY_ENV = "RISK_DEV_ID_KEY"
_DEV_KEY = "risk-dev-key-not-for-production"
# Characters of a national ID the masked form shows. Of an 18-character ID the last 2 are the last
# sequence digit and the check character: with the region code and birth date (both in the outputs)
# at least 9 IDs remain possible. Showing 3 or more would let the check character pin the ID down.
MASK_KEEP = 2


class MissingIdKeyError(RiskUserError):
    """RISK_ID_KEY is not set and the development key was not asked for."""


def dev_key_allowed() -> bool:
    return os.environ.get(DEV_KEY_ENV, "").strip().lower() in ("1", "true", "yes")


def allow_dev_key() -> None:
    """The explicit opt-in of `--dev-id-key` (and of `risk demo`, whose county is synthetic)."""
    os.environ[DEV_KEY_ENV] = "1"
    _key.cache_clear()


def key_kind() -> str:
    """'county' when RISK_ID_KEY is set, 'development' when the dev key was asked for; raises otherwise."""
    if os.environ.get(KEY_ENV):
        return "county"
    if dev_key_allowed():
        return "development"
    raise MissingIdKeyError(
        f"{KEY_ENV} is not set: set the county's secret ID key before validating, publishing or serving "
        f"(for synthetic or test data only, pass --dev-id-key or set {DEV_KEY_ENV}=1)"
    )


def key_kind_or_none() -> str | None:
    try:
        return key_kind()
    except MissingIdKeyError:
        return None


def require_key(*, report_dev_key: bool = True) -> str:
    """Check a key is available before any work starts; returns key_kind(). With report_dev_key=False
    the caller reports the development key itself (the nightly job's run record: DEV_KEY_WARNING, one
    log line per run), so it is not logged here a second time."""
    global _dev_key_reported_by_caller
    kind = key_kind()
    _dev_key_reported_by_caller = not report_dev_key
    try:
        _key()
    finally:
        _dev_key_reported_by_caller = False
    return kind


DEV_KEY_WARNING = (
    "national IDs were hashed with the development key (--dev-id-key): RISK_ID_KEY is not set; for "
    "synthetic or test data only, never for real patients"
)
_dev_key_reported_by_caller = False


@functools.cache
def _key() -> bytes:
    if key_kind() == "county":
        return os.environ[KEY_ENV].encode()
    if _dev_key_reported_by_caller:
        return _DEV_KEY.encode()
    log.warning(
        "%s is not set: national IDs are hashed with the development key (%s=1); never use this on real data",
        KEY_ENV,
        DEV_KEY_ENV,
    )
    return _DEV_KEY.encode()


def hash_national_id(national_id: str | None) -> str | None:
    """Keyed HMAC-SHA256 so equal IDs link across tables without the ID being recoverable."""
    if national_id is None or national_id == "":
        return None
    return hmac.new(_key(), national_id.strip().upper().encode(), hashlib.sha256).hexdigest()


def mask_national_id(national_id: str | None) -> str | None:
    """Only the last MASK_KEEP characters; IDs of up to 6 characters are hidden whole."""
    if not national_id:
        return None
    value = national_id.strip()
    if len(value) <= 6:
        return "*" * len(value)
    return "*" * (len(value) - MASK_KEEP) + value[-MASK_KEEP:]


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    value = phone.strip()
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "****" + value[-4:]
