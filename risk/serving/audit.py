"""Audit trail of patient-level reads, written before the data leaves the server.

Requests hand their rows to one writer thread that commits whatever has queued up in a single transaction
(group commit) and then releases every waiting request. Each request still waits for its own rows to be
durable, but concurrent requests share one commit: on SQLite that avoids writers sleeping in the busy
handler, on PostgreSQL it shares one WAL flush.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from risk.serving import schema
from risk.serving.auth import User

log = logging.getLogger(__name__)
MAX_ROWS_PER_COMMIT = 20_000
WAIT_SECONDS = 30.0


def audit_rows(user: User, endpoint: str, person_ids: list[str | None], run_id: str | None,
               outcome: str = "ok", team_id: str | None = None) -> list[dict[str, Any]]:
    """One row per person read (one row without a person for a refused or empty read); IDs asked for are
    cut to the column width so a long one is still audited."""
    now = datetime.now(UTC)
    team = team_id[:64] if team_id else None
    return [{"at": now, "user_name": user.name, "role": user.role, "endpoint": endpoint,
             "person_id": pid[:64] if pid else pid, "run_id": run_id, "outcome": outcome, "team_id": team}
            for pid in (person_ids or [None])]


class AuditWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.Queue[tuple[list[dict[str, Any]], Future[None]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Block until `rows` are committed; raises if they could not be."""
        done: Future[None] = Future()
        self._queue.put((rows, done))
        done.result(timeout=WAIT_SECONDS)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=WAIT_SECONDS)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            count = len(first[0])
            while count < MAX_ROWS_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
                count += len(item[0])
            try:
                with self._engine.begin() as conn:
                    conn.execute(schema.audit.insert(), [row for rows, _ in batch for row in rows])
            except Exception as exc:  # every waiting request must learn its read was not audited
                log.exception("audit write failed")
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)
