"""The lookup under concurrent load (issue 19): pooled store connections are reused rather than opened per
request, and every read leaves exactly one audit row however many requests share a commit."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from risk.serving import queries, schema
from risk.serving.api import SERVING_THREADS, create_app
from risk.serving.auth import add_user
from risk.serving.demo import demo_person_id, write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")

PERSONS = 120
CLIENTS = 24  # more concurrent requests than the old pool (8) held, fewer than AnyIO's default 40 threads


@pytest.fixture
def store(tmp_path: Path) -> str:
    run = write_demo_run(tmp_path / "r1", persons=PERSONS, seed=3, run_id="r1")
    url = str(tmp_path / "store.db")
    publish_run(run, url)
    return url


def test_concurrent_lookups_reuse_pooled_connections_and_audit_each_read_once(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = queries.patient_view

    def slow_view(conn: Any, user: Any, person_id: str) -> Any:
        time.sleep(0.02)  # hold the connection so the requests overlap inside the store
        return view(conn, user, person_id)

    monkeypatch.setattr(queries, "patient_view", slow_view)
    engine = open_store(store)
    token = add_user(engine, "admin", "county_admin")
    team_token = add_user(engine, "team-a", "team", team_id="TEAM000")
    app = create_app(store)
    opened = Counter()
    event.listen(app.state.engine, "connect", lambda *_: opened.update(["connect"]))
    asked = [demo_person_id(i % PERSONS) for i in range(CLIENTS * 10)]
    missing = [f"P9{i:06d}" for i in range(CLIENTS)]

    with TestClient(app) as client:

        def lookup(person_id: str, bearer: str = token) -> int:
            return client.get(
                f"/api/patients/{person_id}", headers={"Authorization": f"Bearer {bearer}"}
            ).status_code

        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(lookup, asked))
            refused = list(pool.map(lambda pid: lookup(pid, team_token), missing))
    # the app has shut down (lifespan exit): the audit writer has nothing left to write

    assert statuses == [200] * len(asked) and refused == [403] * len(missing)
    assert opened["connect"] <= SERVING_THREADS + 2, opened
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                schema.audit.c.user_name,
                schema.audit.c.person_id,
                schema.audit.c.outcome,
                schema.audit.c.endpoint,
            )
        ).all()
    engine.dispose()
    assert Counter((r.person_id, r.outcome) for r in rows if r.user_name == "admin") == Counter(
        (pid, "ok") for pid in asked
    )
    assert sorted(r.person_id for r in rows if r.user_name == "team-a") == sorted(missing)
    assert {r.outcome for r in rows if r.user_name == "team-a"} == {"denied"}
    assert {r.endpoint for r in rows} == {"patient"}


def test_serve_starts_one_worker_process_per_core_by_default(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import uvicorn
    from typer.testing import CliRunner

    from risk.cli import app as cli_app
    from risk.serving import workers as serving_workers
    from risk.serving.api import STORE_URL_ENV

    started: list[tuple[object, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    monkeypatch.setattr(serving_workers, "run_workers", lambda factory, **kw: started.append((factory, kw)))
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["serve", "--store", store]).exit_code == 0
    assert runner.invoke(cli_app, ["serve", "--store", store, "--workers", "1"]).exit_code == 0
    (default_factory, default_kw), (single_app, single_kw) = started
    assert default_kw["workers"] == 3 and callable(default_factory)
    assert os.environ[STORE_URL_ENV] == store
    options = serving_workers.worker_options("127.0.0.1", 8000, 3)
    assert options["reuse_port"] is True and options["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert options["control_socket_disable"] is True
    assert not isinstance(single_app, str) and "workers" not in single_kw


def _audit_rows(engine: Any) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(schema.audit)).scalar_one()


def test_async_audit_writes_share_commits_and_queue_behind_the_one_in_flight(store: str) -> None:
    """Reads ready on the event loop at the same time share one commit; while a batch waits for SQLite's
    write lock (here held by another connection, as another worker process would), nobody is answered and
    the reads arriving meanwhile queue up as the next batch, again one commit."""
    import asyncio
    import sqlite3

    from risk.serving.audit import AuditWriter, audit_rows
    from risk.serving.auth import User

    engine = open_store(store)
    commits = Counter()
    event.listen(engine, "commit", lambda *_: commits.update(["commit"]))
    user = User(name="nurse", role="county_admin")
    writer = AuditWriter(engine)

    async def scenario() -> None:
        first = [
            asyncio.ensure_future(writer.write_async(audit_rows(user, "patient", [f"P{i}"], "r1")))
            for i in range(5)
        ]
        await asyncio.gather(*first)
        assert commits["commit"] == 1 and _audit_rows(engine) == 5

        other_process = sqlite3.connect(store, isolation_level=None)
        try:
            other_process.execute("BEGIN IMMEDIATE")  # SQLite's write lock
            held = [
                asyncio.ensure_future(writer.write_async(audit_rows(user, "patient", [f"Q{i}"], "r1")))
                for i in range(3)
            ]
            await asyncio.sleep(0.2)  # the writer now waits for the lock with this batch
            later = [
                asyncio.ensure_future(writer.write_async(audit_rows(user, "patient", [f"R{i}"], "r1")))
                for i in range(7)
            ]
            await asyncio.sleep(0.2)
            assert not any(f.done() for f in held + later)  # nothing answered before its row is stored
            assert _audit_rows(engine) == 5
            other_process.execute("COMMIT")
        finally:
            other_process.close()
        await asyncio.gather(*held, *later)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert _audit_rows(engine) == 15
    assert commits["commit"] == 3  # 5 together, then the 3 held, then the 7 that came meanwhile
    engine.dispose()


def test_sqlite_lookups_run_on_the_event_loop_without_a_thread_hop(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio.to_thread

    engine = open_store(store)
    token = add_user(engine, "admin", "county_admin")
    team_token = add_user(engine, "team-a", "team", team_id="TEAM000")
    app = create_app(store)
    hops = Counter()
    run_sync = anyio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.update([getattr(fn, "__name__", "?")])
        return await run_sync(fn, *args, **kwargs)

    with TestClient(app) as client:
        for bearer in (token, team_token):  # the first use of each token is checked in the store
            client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
        monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
        answers = [
            client.get(f"/api/patients/{demo_person_id(i)}", headers={"Authorization": f"Bearer {token}"})
            for i in range(5)
        ]
        refused = client.get("/api/patients/P9000000", headers={"Authorization": f"Bearer {team_token}"})
        found = client.post(
            "/api/search", json={"q": demo_person_id(1)}, headers={"Authorization": f"Bearer {token}"}
        )
    assert [a.status_code for a in answers] == [200] * 5 and refused.status_code == 403
    assert found.status_code == 200 and found.json()["results"]
    assert answers[0].headers["cache-control"] == "no-store"
    assert hops == Counter(), hops
    with engine.connect() as conn:
        rows = conn.execute(select(schema.audit.c.endpoint, schema.audit.c.outcome)).all()
    engine.dispose()
    assert Counter(rows) == Counter({("patient", "ok"): 5, ("patient", "denied"): 1, ("search", "ok"): 1})


def _established_by_process(pids: list[int], port: int) -> dict[int, int]:
    """Server-side keep-alive connections on `port` held by each process (from /proc: socket inodes)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01 = ESTABLISHED
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        links = [str(fd.readlink()) for fd in fds.iterdir() if fd.is_symlink()]
        held[pid] = sum(link.startswith("socket:[") and link[8:-1] in inodes for link in links)
    return held


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_workers_share_keep_alive_connections_and_flush_audit_on_sigterm(store: str, tmp_path: Path) -> None:
    """`risk serve --workers 2`: 20 keep-alive connections opened at once land on both workers (one
    listening socket per worker with SO_REUSEPORT; with uvicorn's one shared socket, one worker could take
    them all), and SIGTERM stops the server cleanly with every read's audit row committed."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading

    import httpx

    engine = open_store(store)
    token = add_user(engine, "load-admin", "county_admin")
    before = _audit_rows(engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "risk.cli", "serve", "--store", store, "--port", str(port), "--workers", "2"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=root,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    base = f"http://127.0.0.1:{port}"
    clients: list[httpx.Client] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        workers = [
            int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        ]
        assert len(workers) == 2, workers

        clients = [
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) for _ in range(20)
        ]
        start = threading.Barrier(len(clients))
        statuses: list[int] = []

        def lookups(client: httpx.Client) -> None:
            start.wait()  # open all 20 connections at once
            for i in range(3):
                statuses.append(client.get(f"/api/patients/{demo_person_id(i)}").status_code)

        # one worker is busy (stopped) while the connections arrive: with one shared listening socket the
        # other worker accepts them all; with a socket per worker the kernel still queues its share on the
        # busy worker's socket, and that worker picks them up when it is free again
        os.kill(workers[0], signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(len(clients)) as pool:
                done = [pool.submit(lookups, client) for client in clients]
                time.sleep(1.5)
                os.kill(workers[0], signal.SIGCONT)
                for future in done:
                    future.result()
        finally:
            os.kill(workers[0], signal.SIGCONT)
        assert statuses == [200] * 60
        held = _established_by_process([server.pid, *workers], port)
        assert sum(held.values()) == 20, held
        assert sum(count > 0 for count in held.values()) == 2, held  # both workers serve connections

        server.send_signal(signal.SIGTERM)  # connections still open: graceful shutdown closes them
        assert server.wait(timeout=40) == 0, log.read_text()
    finally:
        for client in clients:
            client.close()
        if server.poll() is None:
            server.kill()
    assert _audit_rows(engine) - before == 60
    assert "Shutting down" in log.read_text() or "Worker exiting" in log.read_text()
    engine.dispose()


def test_served_heap_is_frozen_before_the_first_request(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up objects are out of the collector's reach in every serving process (the lookup's p99 under
    wrk was 126 ms with full collections walking them, 33-36 ms frozen): the single uvicorn process and
    each gunicorn worker after it builds its app."""
    import gc

    import uvicorn
    from typer.testing import CliRunner

    from risk.cli import app as cli_app
    from risk.serving import workers as serving_workers
    from risk.serving.api import create_app

    frozen_at_start: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: frozen_at_start.append(gc.get_freeze_count()))
    try:
        gc.unfreeze()
        assert CliRunner().invoke(cli_app, ["serve", "--store", store, "--workers", "1"]).exit_code == 0
        assert frozen_at_start and frozen_at_start[0] > 0
        gc.unfreeze()
        worker = serving_workers._Workers(
            lambda: create_app(store), serving_workers.worker_options("127.0.0.1", 0, 2)
        )
        assert worker.load() is not None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
