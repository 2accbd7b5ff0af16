"""Users, roles and bearer tokens of the serving API.

Tokens are 256-bit random secrets shown once at creation. The store keeps only a salted SHA-256 of the
secret: with that much entropy a slow password hash (scrypt, argon2) adds no protection against guessing
but would cost tens of milliseconds on every request. A token reads `rk_<token_id>.<secret>`; the token_id
finds the user row without a scan, the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from risk.errors import RiskUserError
from risk.serving import schema

TEAM_ROLES = ("village_doctor", "team")
ROLES = (*TEAM_ROLES, "township", "county_admin", "analyst")
TOKEN_PREFIX = "rk_"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    team_id: str | None = None
    township_id: str | None = None

    @property
    def patient_level(self) -> bool:
        """Analysts see aggregates only; every other role reads patients within its scope."""
        return self.role != "analyst"

    def scope_label(self) -> str:
        if self.role in TEAM_ROLES:
            return f"team {self.team_id}"
        if self.role == "township":
            return f"township {self.township_id}"
        return "county" if self.role == "county_admin" else "aggregates only"


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def add_user(engine: Engine, name: str, role: str, *, team_id: str | None = None,
             township_id: str | None = None) -> str:
    """Create a user and return its bearer token (the only time the token exists in clear)."""
    name = name.strip()
    if not name:
        raise RiskUserError("user name must not be empty")
    if role not in ROLES:
        raise RiskUserError(f"unknown role '{role}'; choose one of {', '.join(ROLES)}")
    if role in TEAM_ROLES and not team_id:
        raise RiskUserError(f"role {role} needs --team (the family-doctor team whose patients it sees)")
    if role == "township" and not township_id:
        raise RiskUserError("role township needs --township")
    token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    try:
        with engine.begin() as conn:
            conn.execute(schema.users.insert().values(
                name=name, role=role, team_id=team_id if role in TEAM_ROLES else None,
                township_id=township_id if role == "township" else None, token_id=token_id,
                token_salt=salt, token_hash=_digest(salt, secret), created_at=datetime.now(UTC),
            ))
    except IntegrityError as exc:
        raise RiskUserError(f"user '{name}' already exists (revoke it first to issue a new token)") from exc
    return f"{TOKEN_PREFIX}{token_id}.{secret}"


def revoke_user(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        changed = conn.execute(
            update(schema.users).where(schema.users.c.name == name, schema.users.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), name=f"{name} (revoked {secrets.token_hex(4)})")
        ).rowcount
    if not changed:
        raise RiskUserError(f"no active user '{name}'")


def authenticate(engine: Engine, token: str) -> User | None:
    """The user a bearer token belongs to, or None for a malformed, unknown or revoked token."""
    if not token.startswith(TOKEN_PREFIX) or "." not in token:
        return None
    token_id, _, secret = token[len(TOKEN_PREFIX):].partition(".")
    with engine.connect() as conn:
        row = conn.execute(
            select(schema.users)
            .where(schema.users.c.token_id == token_id, schema.users.c.revoked_at.is_(None))
        ).mappings().first()
    if row is None or not hmac.compare_digest(row["token_hash"], _digest(row["token_salt"], secret)):
        return None
    return User(name=row["name"], role=row["role"], team_id=row["team_id"], township_id=row["township_id"])
