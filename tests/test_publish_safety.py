"""Publishing is safe and explicit (issue 12): publishing while the API reads (and audits) succeeds; a run
id covers data, rule set, model and code; a changed run under the same id replaces the old one; an older
run becomes current only with --make-current; `risk runs list/current` show and move the pointer."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from risk.cli import app
from risk.serving import schema
from risk.serving.api import create_app
from risk.serving.auth import add_user
from risk.serving.demo import demo_person_id, write_demo_run
from risk.serving.publish import list_runs, publish_run
from risk.serving.store import open_store
from tests.support.hostile_county import AS_OF, write_hostile_county

PERSONS = 120


def _run(tmp_path: Path, name: str, seed: int, as_of: date, run_id: str | None = None) -> Path:
    return write_demo_run(tmp_path / name, persons=PERSONS, seed=seed, as_of=as_of, run_id=run_id or name)


def _current(store: str) -> str:
    return next(run["run_id"] for run in list_runs(store) if run["current"])


def test_publishing_while_the_api_reads_and_audits_succeeds(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    runs = [_run(tmp_path, f"r{i}", i, date(2024, 1 + i, 28)) for i in range(5)]
    publish_run(runs[0], store)
    engine = open_store(store)
    token = add_user(engine, "admin", "county_admin")
    engine.dispose()
    application = create_app(store)
    stop = threading.Event()
    statuses: list[int] = []

    def reader() -> None:
        client = TestClient(application)  # no lifespan: one thread's exit must not stop the audit writer
        headers = {"Authorization": f"Bearer {token}"}
        while not stop.is_set():
            for index in range(0, PERSONS, 7):  # every read writes an audit row
                statuses.append(
                    client.get(f"/api/patients/{demo_person_id(index)}", headers=headers).status_code
                )

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        results = [CliRunner().invoke(app, ["publish", str(run), "--store", store]) for run in runs[1:]]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert [r.exit_code for r in results] == [0] * len(results), [r.output for r in results]
    assert _current(store) == "r4"
    assert statuses and set(statuses) <= {200}


def test_run_id_covers_the_rule_set(tmp_path: Path) -> None:
    from pipelines.nightly import NightlyOptions, run_nightly

    county = write_hostile_county(tmp_path / "input")
    edited = tmp_path / "county-rules.yaml"
    text = (Path(__file__).parent.parent / "risk/definitions/rules/default.yaml").read_text(encoding="utf-8")
    # a county's copy (its own name: the packaged name and version are refused for other content)
    text = text.replace("name: default", "name: county-edit", 1)
    edited.write_text(text.replace("sbp_target: {value: 140,", "sbp_target: {value: 135,"), encoding="utf-8")
    first = run_nightly(
        NightlyOptions(input_dir=county, as_of=AS_OF, out=tmp_path / "a", use_model=False, xlsx=False)
    )
    second = run_nightly(
        NightlyOptions(
            input_dir=county, as_of=AS_OF, out=tmp_path / "b", use_model=False, xlsx=False, rules=edited
        )
    )
    assert first.manifest["versions"]["data_fingerprint"] == second.manifest["versions"]["data_fingerprint"]
    assert first.manifest["run_id"] != second.manifest["run_id"]
    assert first.manifest["run_id"].startswith(AS_OF.isoformat())


def test_a_changed_run_under_the_same_id_replaces_the_published_one(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    old = _run(tmp_path, "old", 1, date(2024, 12, 31), run_id="2024-12-31-x")
    new = _run(tmp_path, "new", 2, date(2024, 12, 31), run_id="2024-12-31-x")
    manifest = json.loads((new / "run.json").read_text())
    manifest["versions"]["rule_set"] = "county-edit"
    (new / "run.json").write_text(json.dumps(manifest))
    publish_run(old, store)
    assert publish_run(old, store).already_published
    result = publish_run(new, store)
    assert result.replaced and not result.already_published
    engine = open_store(store)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(schema.patients.c.person_id, schema.patients.c.tier)).all())
        history = conn.execute(select(schema.tier_history.c.person_id)).scalars().all()
    engine.dispose()
    tiers = pd.read_parquet(new / "tiers.parquet", columns=["person_id", "tier"])
    assert stored == dict(zip(tiers["person_id"], tiers["tier"], strict=True))
    assert len(history) == PERSONS  # replaced, not appended


def test_an_older_run_becomes_current_only_when_asked(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    newer = _run(tmp_path, "2024-12-31", 1, date(2024, 12, 31))
    older = _run(tmp_path, "2024-09-30", 2, date(2024, 9, 30))
    runner = CliRunner()
    assert runner.invoke(app, ["publish", str(newer), "--store", store]).exit_code == 0
    refused = runner.invoke(app, ["publish", str(older), "--store", store])
    assert refused.exit_code == 2 and "--make-current" in refused.output
    assert _current(store) == "2024-12-31"
    assert runner.invoke(app, ["publish", str(older), "--store", store, "--make-current"]).exit_code == 0
    assert _current(store) == "2024-09-30"
    again = runner.invoke(app, ["publish", str(newer), "--store", store])  # no longer a no-op
    assert again.exit_code == 0 and "now the current run" in again.output
    assert _current(store) == "2024-12-31"
    listed = runner.invoke(app, ["runs", "list", "--store", store])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.output.splitlines()] == ["*", "2024-09-30"]
    moved = runner.invoke(app, ["runs", "current", "2024-09-30", "--store", store])
    assert moved.exit_code == 0 and _current(store) == "2024-09-30"
    shown = runner.invoke(app, ["runs", "current", "--store", store])
    assert shown.output.startswith("2024-09-30")
    unknown = runner.invoke(app, ["runs", "current", "nope", "--store", store])
    assert unknown.exit_code == 2 and "not in the store" in unknown.output
