"""Opening the serving store: SQLite file (default, embedded) or PostgreSQL (production)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import QueuePool

from risk.errors import RiskUserError
from risk.serving.schema import metadata

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(RiskUserError):
    """The serving store cannot be opened or is not initialised."""


def normalise_store_url(store: str | Path) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as a SQLite file)."""
    text = str(store)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    url = make_url(text)
    if url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship (COPY support for bulk publish).
        text = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return text


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module so BEGIN is emitted for reads too: a request that
    # reads several tables then sees one snapshot (WAL) even while a publish commits.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A transaction that reads and then writes must take the write lock first (BEGIN IMMEDIATE): upgrading
    # a read snapshot after another writer committed fails at once with "database is locked" instead of
    # waiting. Readers keep a plain BEGIN so they never wait for writers.
    immediate = connection.get_execution_options().get(IMMEDIATE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


IMMEDIATE_OPTION = "write"
LOCK_RETRIES = 6


def writer(engine: Engine) -> Engine:
    """The engine for read-then-write transactions (`with writer(engine).begin() as conn:`)."""
    return engine.execution_options(**{IMMEDIATE_OPTION: True})


def _locked(exc: OperationalError) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work(conn)` in one write transaction (BEGIN IMMEDIATE on SQLite), retried with back-off when the
    store is still locked after its busy timeout; the transaction is all or nothing, so a retry starts
    clean."""
    delay = 0.2
    for attempt in range(LOCK_RETRIES):
        try:
            with writer(engine).begin() as conn:
                return work(conn)
        except OperationalError as exc:
            if not _locked(exc) or attempt == LOCK_RETRIES - 1:
                raise
            log.warning("serving store is locked; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def open_store(store_url: str | Path, *, create: bool = False, pool_size: int = 8) -> Engine:
    """Engine for the store; `create=True` creates missing tables (publish, user admin)."""
    url = normalise_store_url(store_url)
    try:
        if url.startswith("sqlite"):
            path = make_url(url).database
            if path and not create and not Path(path).exists():
                raise StoreError(f"serving store {path} does not exist (publish a run first)")
            if path and create:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, poolclass=QueuePool, pool_size=pool_size, max_overflow=48, hide_parameters=True,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            # REPEATABLE READ: a request's several statements see one snapshot, like SQLite's WAL read.
            engine = create_engine(
                url, pool_size=pool_size, max_overflow=48, pool_pre_ping=True, hide_parameters=True,
                isolation_level="REPEATABLE READ",
            )
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use store URL: {exc}") from exc
    try:
        if create:
            metadata.create_all(engine)
            add_missing_columns(engine)
        elif not inspect(engine).has_table("serving_current_run"):
            raise StoreError("serving store is not initialised (run `risk publish` first)")
        elif missing := missing_columns(engine):
            raise StoreError(f"serving store was created by an older version and lacks "
                             f"{', '.join(missing)}; `risk publish` (or `risk users add`) adds them, "
                             "keeping users and the audit log")
    except OperationalError as exc:
        raise StoreError(f"cannot open serving store: {db_error_message(exc)}") from None
    return engine


def _added_columns(connection: Any) -> list[tuple[str | None, str, Any]]:
    """(schema, table, Column) for every column of the schema that the store's existing tables lack
    (Alembic compares the store with the metadata; new tables are create_all's business)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    return [(d[1], d[2], d[3]) for d in compare_metadata(MigrationContext.configure(connection), metadata)
            if isinstance(d, tuple) and d[0] == "add_column"]


def missing_columns(engine: Engine) -> list[str]:
    """table.column for every column of the schema that the store's existing tables lack."""
    with engine.connect() as connection:
        return [f"{table}.{column.name}" for _, table, column in _added_columns(connection)]


def add_missing_columns(engine: Engine) -> list[str]:
    """Bring a store written by an older version up to the schema: new tables come from create_all, new
    columns (always nullable) are added here with Alembic's operations. Nothing is dropped or retyped, so
    users, tier history and the audit log survive an upgrade."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    added = []
    with engine.begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        for schema, table, column in _added_columns(connection):
            if not column.nullable:
                raise StoreError(f"cannot add required column {table}.{column.name} to an existing store")
            operations.add_column(table, column.copy(), schema=schema)
            added.append(f"{table}.{column.name}")
    return added


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|\([^)]*\)=\([^)]*\)")


def db_error_message(exc: BaseException) -> str:
    """A database error on one line without row values: SQLAlchemy's text carries the statement's
    parameters (patient rows) and drivers add DETAIL/CONTEXT lines quoting values; keep the driver's
    error class and the first line of its reason, with quoted text removed."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = _QUOTED.sub("…", lines[0]) if lines else ""
    return f"{orig.__class__.__name__}: {first[:200]}" if first else orig.__class__.__name__


def safe_url(store_url: str | Path) -> str:
    """The store URL without its password, for messages and logs."""
    return make_url(normalise_store_url(store_url)).render_as_string(hide_password=True)
