"""Users, roles, bearer tokens and password logins of the serving API.

Machine clients use bearer tokens; people log in on the web page with a user name and password (argon2id,
argon2-cffi) and get a session cookie (HttpOnly, SameSite=Strict) plus a CSRF token the page sends back on
every request that changes something. After MAX_FAILED_LOGINS wrong passwords in a row an account is locked
for LOCK_MINUTES; `risk users add NAME --password` sets or resets the password and unlocks it.

Tokens are 256-bit random secrets shown once at creation. The store keeps only a salted SHA-256 of the
secret: with that much entropy a slow password hash (scrypt, argon2) adds no protection against guessing
but would cost tens of milliseconds on every request. A token reads `rk_<token_id>.<secret>`; the token_id
finds the user row without a scan, the secret is compared in constant time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from risk.errors import RiskUserError
from risk.serving import schema

TEAM_ROLES = ("village_doctor", "team")
ROLES = (*TEAM_ROLES, "township", "county_admin", "analyst")
TOKEN_PREFIX = "rk_"
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
SESSION_HOURS = 12
MIN_PASSWORD_LENGTH = 8


class AccountLocked(Exception):
    """Too many wrong passwords: the account is locked until `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


@dataclass(frozen=True)
class Session:
    token: str  # cookie value, shown once
    csrf_token: str
    user: User
    expires_at: datetime


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


def _hasher():  # noqa: ANN202
    from argon2 import PasswordHasher

    return PasswordHasher()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone-aware columns: read them as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_password(engine: Engine, name: str, password: str) -> None:
    """Set or reset an active user's password (argon2id) and clear any lock-out."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RiskUserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    digest = _hasher().hash(password)
    with engine.begin() as conn:
        changed = conn.execute(
            update(schema.users).where(schema.users.c.name == name, schema.users.c.revoked_at.is_(None))
            .values(password_hash=digest, failed_logins=0, locked_until=None)
        ).rowcount
    if not changed:
        raise RiskUserError(f"no active user '{name}'")


def user_exists(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(
            select(schema.users.c.name)
            .where(schema.users.c.name == name, schema.users.c.revoked_at.is_(None))
        ).first() is not None


def check_password(engine: Engine, name: str, password: str, now: datetime | None = None) -> User | None:
    """The user when the password is right; None when the name or password is wrong (the same answer for
    both, after the same work); AccountLocked while the account is locked."""
    from argon2.exceptions import InvalidHashError, VerificationError

    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(
            select(schema.users)
            .where(schema.users.c.name == name.strip(), schema.users.c.revoked_at.is_(None))
        ).mappings().first()
    hasher = _hasher()
    if row is None or not row["password_hash"]:
        # spend the same time as a real check so a wrong name is not faster than a wrong password
        with contextlib.suppress(VerificationError):
            hasher.verify(_DUMMY_HASH, password)
        return None
    locked_until = _aware(row["locked_until"])
    if locked_until is not None and locked_until > now:
        raise AccountLocked(locked_until)
    try:
        hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        failed = (row["failed_logins"] or 0) + 1
        values: dict = {"failed_logins": failed}
        if failed >= MAX_FAILED_LOGINS:
            values = {"failed_logins": 0, "locked_until": now + timedelta(minutes=LOCK_MINUTES)}
        with engine.begin() as conn:
            conn.execute(update(schema.users).where(schema.users.c.name == row["name"]).values(**values))
        if "locked_until" in values:
            raise AccountLocked(values["locked_until"]) from None
        return None
    if row["failed_logins"] or locked_until is not None:
        with engine.begin() as conn:
            conn.execute(update(schema.users).where(schema.users.c.name == row["name"])
                         .values(failed_logins=0, locked_until=None))
    return User(name=row["name"], role=row["role"], team_id=row["team_id"], township_id=row["township_id"])


def _session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(engine: Engine, user: User, now: datetime | None = None) -> Session:
    """A new session for a user who just logged in: a random cookie value (only its hash is stored) and a
    CSRF token bound to the session."""
    now = now or datetime.now(UTC)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires = now + timedelta(hours=SESSION_HOURS)
    with engine.begin() as conn:
        conn.execute(schema.sessions.delete().where(schema.sessions.c.expires_at < now))
        conn.execute(schema.sessions.insert().values(
            session_hash=_session_hash(token), user_name=user.name, csrf_token=csrf, created_at=now,
            expires_at=expires,
        ))
    return Session(token=token, csrf_token=csrf, user=user, expires_at=expires)


def session_user(engine: Engine, token: str, now: datetime | None = None) -> tuple[User, str] | None:
    """(user, csrf token) of a live session cookie; None when unknown, expired or the user was revoked."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(
            select(schema.sessions.c.csrf_token, schema.sessions.c.expires_at, schema.users)
            .join(schema.users, schema.users.c.name == schema.sessions.c.user_name)
            .where(schema.sessions.c.session_hash == _session_hash(token),
                   schema.users.c.revoked_at.is_(None))
        ).mappings().first()
    if row is None or _aware(row["expires_at"]) <= now:
        return None
    user = User(name=row["name"], role=row["role"], team_id=row["team_id"], township_id=row["township_id"])
    return user, row["csrf_token"]


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(schema.sessions.delete().where(schema.sessions.c.session_hash == _session_hash(token)))


# argon2id hash of a throw-away value: checked against when the user does not exist (equal work)
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$7q3Q7839/p+U+VJMQ8PUSw$Men1rX3kJzIBZJ2CbRgEN7rzEqKRgty+T7+b8kysN+8"
)
