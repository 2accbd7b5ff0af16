"""Audit trail of patient-level reads, written before the data leaves the server.

Requests hand their rows to one writer thread that commits whatever has queued up in a single transaction
(group commit) and then releases every waiting request. Each request still waits for its own rows to be
durable, but concurrent requests share one commit: on SQLite that avoids writers sleeping in the busy
handler, on PostgreSQL it shares one WAL flush.

Async endpoints wait with `await writer.write_async(rows)`: no thread is held while the commit happens, and
the writer releases all of one event loop's waiters of a batch with one wake-up of that loop.

Not done, on purpose: an OS file lock to make the SQLite writers of several worker processes take turns
(instead of SQLite's busy handler, which polls with growing sleeps). Tried for issue 19: flock is not
fair, a writer that commits in a tight loop takes it again before the other process wakes, and under load
one worker's audit writer starved for seconds while its requests waited.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def audit_rows(
    user: User,
    endpoint: str,
    person_ids: list[str | None],
    run_id: str | None,
    outcome: str = "ok",
    team_id: str | None = None,
) -> list[dict[str, Any]]:
    """One row per person read (one row without a person for a refused or empty read); IDs asked for are
    cut to the column width so a long one is still audited."""
    now = datetime.now(UTC)
    team = team_id[:64] if team_id else None
    return [
        {
            "at": now,
            "user_name": user.name,
            "role": user.role,
            "endpoint": endpoint,
            "person_id": pid[:64] if pid else pid,
            "run_id": run_id,
            "outcome": outcome,
            "team_id": team,
        }
        for pid in (person_ids or [None])
    ]


class _LoopBatch:
    """Rows of one event loop's requests waiting for the next commit. At most one batch per loop is with
    the writer at a time; what arrives meanwhile waits here and goes as one batch when that commit is done
    (group commit: the busier the server, the more reads share a commit)."""

    __slots__ = ("rows", "waiters", "in_flight", "scheduled")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.in_flight = self.scheduled = False


class _LoopWaiters:
    __slots__ = ("loop", "batch", "futures")

    def __init__(self, loop: asyncio.AbstractEventLoop, batch: _LoopBatch, futures: list) -> None:
        self.loop, self.batch, self.futures = loop, batch, futures


class AuditWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.Queue[tuple[list[dict[str, Any]], Future[None] | _LoopWaiters] | None] = (
            queue.Queue()
        )
        self._loops: dict[asyncio.AbstractEventLoop, _LoopBatch] = {}
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Block until `rows` are committed; raises if they could not be."""
        done: Future[None] = Future()
        self._queue.put((rows, done))
        done.result(timeout=WAIT_SECONDS)

    async def write_async(self, rows: list[dict[str, Any]]) -> None:
        """Return once `rows` are committed, without holding a thread; raises if they could not be."""
        loop = asyncio.get_running_loop()
        batch = self._loops.get(loop)
        if batch is None:
            batch = self._loops[loop] = _LoopBatch()
        done: asyncio.Future[None] = loop.create_future()
        batch.rows.extend(rows)
        batch.waiters.append(done)
        if not batch.in_flight and not batch.scheduled:
            # after the callbacks already due on this loop: the other requests ready now join this batch
            batch.scheduled = True
            loop.call_soon(self._send, loop, batch)
        await asyncio.wait_for(done, WAIT_SECONDS)

    def _send(self, loop: asyncio.AbstractEventLoop, batch: _LoopBatch) -> None:
        batch.scheduled = False
        if batch.in_flight or not batch.waiters:
            return
        rows, futures = batch.rows, batch.waiters
        batch.rows, batch.waiters, batch.in_flight = [], [], True
        self._queue.put((rows, _LoopWaiters(loop, batch, futures)))

    def _sent(
        self, loop: asyncio.AbstractEventLoop, batch: _LoopBatch, futures: list, error: BaseException | None
    ) -> None:
        batch.in_flight = False
        _settle(futures, error)
        if batch.waiters:
            self._send(loop, batch)

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
            error: BaseException | None = None
            try:
                with self._engine.begin() as conn:
                    conn.execute(schema.audit.insert(), [row for rows, _ in batch for row in rows])
            except Exception as exc:  # every waiting request must learn its read was not audited
                log.exception("audit write failed")
                error = exc
            for _, done in batch:
                if isinstance(done, _LoopWaiters):
                    with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits any more
                        done.loop.call_soon_threadsafe(self._sent, done.loop, done.batch, done.futures, error)
                elif error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():  # the request gave up waiting (timeout or cancelled)
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
