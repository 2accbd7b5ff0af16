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
    from risk.serving.api import STORE_URL_ENV

    started: list[tuple[object, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["serve", "--store", store]).exit_code == 0
    assert runner.invoke(cli_app, ["serve", "--store", store, "--workers", "1"]).exit_code == 0
    (default_app, default_kw), (single_app, single_kw) = started
    assert default_app == "risk.serving.api:create_app_from_env" and default_kw["workers"] == 3
    assert os.environ[STORE_URL_ENV] == store
    assert not isinstance(single_app, str) and "workers" not in single_kw
