"""The bulk publish path (issue 19, part 4) loads the same rows as the path it replaced, and keeps the
history semantics: the published tables of a seeded run match digests recorded with the old code (table by
table, on SQLite and PostgreSQL); a changed run re-published under its id holds exactly the new content; a
publish that fails while its rows stream in leaves the previous run current and readable, with no row of
the failed run visible.

Regenerate the digests (only for an intended change of published content, and say so in the commit):
    RISK_WRITE_PUBLISH_DIGEST=1 python -m pytest tests/test_publish_bulk.py
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

import risk.serving.publish as publish_module
from risk import privacy
from risk.serving import queries, schema
from risk.serving.auth import User
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store
from tests import test_serving

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")
store_url = test_serving.store_url  # the SQLite / PostgreSQL store fixture

STORED = Path(__file__).parent / "data" / "publish_digest.json"
PERSONS = 300
TABLES = (schema.patients, schema.search_terms, schema.tier_history, schema.call_cascade)


def _run(path: Path, *, seed: int = 19, run_id: str = "r19", as_of: date = date(2024, 12, 31)) -> Path:
    """A demo run with more readings than the series keep (70 BP readings > 60, fpg and HbA1c > 40 each),
    so the caps, the three-year window and both glucose tests are exercised."""
    run = write_demo_run(
        path,
        persons=PERSONS,
        seed=seed,
        as_of=as_of,
        run_id=run_id,
        townships=3,
        teams_per_township=2,
        readings=70,
    )
    labs = pd.read_parquet(run / "canonical" / "labs.parquet")
    rng = np.random.default_rng(seed)
    hba1c = labs.assign(test="hba1c", value=rng.normal(7.0, 1.2, len(labs)).round(1), unit="%")
    # distinct times so that no two readings of a person tie (a tie has no defined order)
    hba1c["measured_at"] = hba1c["measured_at"] + pd.to_timedelta(rng.integers(1, 50, len(labs)), unit="min")
    pd.concat([labs, hba1c]).to_parquet(run / "canonical" / "labs.parquet", index=False)
    (run / "calls").mkdir(exist_ok=True)
    (run / "calls" / "cascade.csv").write_text(
        "month,level,unit,step,result,numerator,denominator,value,suppressed\n"
        "2024-12,county,county,called,,12,40,0.3,\n"
        "2024-12,team,TEAM000,reached,,,,,small\n",
        encoding="utf-8",
    )
    return run


@pytest.fixture
def county_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test key for this test only. The key is cached on first use, so without clearing it a test that
    ran earlier in the same worker (development key) decided the hashes: the chunked digest tests failed
    under -n 2 and passed alone."""
    monkeypatch.setenv("RISK_ID_KEY", "test-key")
    privacy._key.cache_clear()
    yield
    privacy._key.cache_clear()


def _canonical(value: object) -> object:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _series(text: str) -> list:
    items = json.loads(text)
    dates = [item["date"] for item in items]
    assert dates == sorted(dates), "a series is not in date order"
    # readings of one day may come in either order (no time in the series)
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def table_digests(store: str, run_id: str) -> dict[str, str]:
    """Content hash of each table's rows of `run_id`, ordered by key; JSON columns parsed (a text's key
    order or spacing is not content)."""
    engine = open_store(store)
    digests = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                key = [c for c in table.primary_key.columns]
                rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(*key)).mappings()
                lines = []
                for row in rows:
                    record = {k: _canonical(v) for k, v in row.items()}
                    for column in ("conditions", "reasons", "last_measurements"):
                        if column in record and record[column] is not None:
                            record[column] = json.loads(record[column])
                    for column in ("bp_series", "glucose_series"):
                        if column in record:
                            record[column] = _series(record[column])
                    lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
                digests[table.name] = f"{len(lines)}:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
    finally:
        engine.dispose()
    return digests


def test_published_tables_match_the_content_of_the_old_path(
    tmp_path: Path, store_url: str, county_key: None
) -> None:  # the digests hold keyed national-ID hashes
    publish_run(_run(tmp_path / "run"), store_url)
    digests = table_digests(store_url, "r19")
    if os.environ.get("RISK_WRITE_PUBLISH_DIGEST") == "1" and store_url.endswith(".db"):
        STORED.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert digests == json.loads(STORED.read_text(encoding="utf-8"))


def test_a_changed_run_republished_holds_exactly_the_new_content(tmp_path: Path, store_url: str) -> None:
    old = _run(tmp_path / "old", seed=1, run_id="same")
    new = _run(tmp_path / "new", seed=2, run_id="same")
    manifest = json.loads((new / "run.json").read_text(encoding="utf-8"))
    manifest["versions"]["data_fingerprint"] = "changed"
    (new / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    publish_run(old, store_url)
    assert publish_run(new, store_url).replaced
    fresh = str(tmp_path / "fresh.db")
    publish_run(new, fresh)
    assert table_digests(store_url, "same") == table_digests(fresh, "same")


def test_a_publish_failing_while_rows_stream_in_leaves_the_previous_run_current(
    tmp_path: Path,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = _run(tmp_path / "old", seed=1, run_id="old", as_of=date(2024, 11, 30))
    publish_run(old, store_url)
    before = table_digests(store_url, "old")
    original = publish_module._search_term_batches

    def failing(*args, **kwargs):  # the patients are loaded by now; the terms fail part-way
        batches = original(*args, **kwargs)
        yield next(batches)
        raise OSError("disk full")

    monkeypatch.setattr(publish_module, "_search_term_batches", failing)
    monkeypatch.setattr(publish_module, "BATCH_ROWS", 100)
    with pytest.raises(OSError):
        publish_run(_run(tmp_path / "new", seed=2, run_id="new"), store_url)
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            assert queries.current_run(conn)["run_id"] == "old"
            run_id, rows = queries.team_priority_list(conn, User("admin", "county_admin"), "TEAM000")
            assert run_id == "old" and rows
            for table in TABLES:
                stray = select(func.count()).select_from(table).where(table.c.run_id == "new")
                assert conn.execute(stray).scalar_one() == 0
    finally:
        engine.dispose()
    assert table_digests(store_url, "old") == before


def test_the_series_keep_the_newest_readings_of_the_last_three_years(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    store = str(tmp_path / "store.db")
    publish_run(run, store)
    vitals = pd.read_parquet(run / "canonical" / "vitals.parquet")
    labs = pd.read_parquet(run / "canonical" / "labs.parquet")
    start = pd.Timestamp(date(2024, 12, 31) - timedelta(days=3 * 365 + 1))
    engine = open_store(store)
    with engine.connect() as conn:
        row = conn.execute(select(schema.patients).where(schema.patients.c.person_id == "P0000007")).one()
    engine.dispose()
    mine = vitals[(vitals.person_id == "P0000007") & (vitals.measured_at >= start)].sort_values("measured_at")
    expected = [d.strftime("%Y-%m-%d") for d in mine.measured_at.tail(60)]
    assert [item["date"] for item in json.loads(row.bp_series)] == expected
    glucose = json.loads(row.glucose_series)
    mine_labs = labs[(labs.person_id == "P0000007") & (labs.measured_at >= start)]
    for test in ("fpg", "hba1c"):
        assert sum(item["test"] == test for item in glucose) == min(40, int((mine_labs.test == test).sum()))


def test_a_run_without_readings_publishes_empty_series(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "run", persons=40)
    (run / "canonical" / "vitals.parquet").unlink()
    (run / "canonical" / "labs.parquet").unlink()
    store = str(tmp_path / "store.db")
    assert publish_run(run, store).persons == 40
    engine = open_store(store)
    with engine.connect() as conn:
        series = conn.execute(select(schema.patients.c.bp_series, schema.patients.c.glucose_series)).all()
    engine.dispose()
    assert set(series) == {("[]", "[]")}


def test_a_failed_insert_stops_the_row_producer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "store.db")
    publish_run(_run(tmp_path / "old", seed=1, run_id="old", as_of=date(2024, 11, 30)), store)
    original, calls = publish_module.insert_rows, {"n": 0}

    def dying_insert(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        original(*args, **kwargs)

    monkeypatch.setattr(publish_module, "insert_rows", dying_insert)
    monkeypatch.setattr(publish_module, "BATCH_ROWS", 50)
    with pytest.raises(OSError):
        publish_run(_run(tmp_path / "new", seed=2, run_id="new"), store)
    assert not [t for t in threading.enumerate() if t.name == "publish-rows"]
    monkeypatch.setattr(publish_module, "insert_rows", original)
    assert publish_run(_run(tmp_path / "new", seed=2, run_id="new"), store).persons == PERSONS


def test_the_prefetching_producer_stops_with_its_consumer_and_hands_over_its_errors() -> None:
    closed = threading.Event()

    def source():
        try:
            yield from range(1000)
        finally:
            closed.set()

    items = publish_module._prefetched(source(), depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()  # what publish does when an insert fails
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "publish-rows"]

    def failing():
        yield "row"
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(publish_module._prefetched(failing()))


@pytest.mark.parametrize("chunk", [1, 7, PERSONS - 1])
def test_patient_rows_built_in_person_ranges_match_the_recorded_content(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch, county_key: None
) -> None:
    """The patient rows are built a range of persons at a time (memory); every range boundary keeps each
    person, with all of their readings, exactly once."""
    monkeypatch.setattr(publish_module, "CHUNK_PERSONS", chunk)
    monkeypatch.setattr(publish_module, "BATCH_ROWS", 5)
    store = str(tmp_path / "store.db")
    publish_run(_run(tmp_path / "run"), store)
    assert table_digests(store, "r19") == json.loads(STORED.read_text(encoding="utf-8"))


def test_the_row_source_has_a_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's default (80 % of the machine) let one 1M publish take 5.5 GB; the source is bounded, and
    RISK_DUCKDB_MEMORY sets the bound as it does for validation."""
    seen: list[tuple[str, str, str]] = []
    register = publish_module._register_run

    def spy(con, run):  # type: ignore[no-untyped-def]
        seen.append(
            con.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads'), "
                "current_setting('temp_directory')"
            ).fetchone()
        )
        register(con, run)

    monkeypatch.setattr(publish_module, "_register_run", spy)
    monkeypatch.setenv("RISK_DUCKDB_MEMORY", "300MB")
    publish_run(write_demo_run(tmp_path / "run", persons=20), str(tmp_path / "store.db"))
    limit, threads, spill = seen[0]
    assert limit.endswith("MiB") and float(limit.split()[0]) < 300
    assert int(threads) <= 2
    assert spill and not Path(spill).exists()  # its own spill folder, removed after the publish


def test_readings_tied_at_the_cutoff_keep_the_earlier_rows_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of several readings with the same time made the newest 60 depended on DuckDB's threads (the
    digest test failed under load with small chunks); the earlier rows of the file are kept now."""
    run = write_demo_run(tmp_path / "run", persons=4, readings=70)
    vitals = pd.read_parquet(run / "canonical" / "vitals.parquet")
    first = vitals["person_id"] == vitals["person_id"].iloc[0]
    vitals.loc[first, "measured_at"] = pd.Timestamp("2024-12-30 09:00")
    vitals.loc[first, "sbp"] = np.arange(100, 100 + first.sum(), dtype=float)
    vitals.to_parquet(run / "canonical" / "vitals.parquet", index=False)
    for chunk in (1, 3):
        monkeypatch.setattr(publish_module, "CHUNK_PERSONS", chunk)
        store = str(tmp_path / f"store{chunk}.db")
        publish_run(run, store)
        engine = open_store(store)
        with engine.connect() as conn:
            series = conn.execute(
                select(schema.patients.c.bp_series).where(
                    schema.patients.c.person_id == vitals["person_id"].iloc[0]
                )
            ).scalar_one()
        engine.dispose()
        assert sorted(item["sbp"] for item in json.loads(series)) == list(range(100, 160))


def test_the_tier_history_is_loaded_while_the_patient_rows_are_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver inserts the tier history (read from tiers.parquet as is) while the row producer stages
    the tiered persons for the patient rows; before, the stage ran ahead of the load and the driver waited
    for it. The producer stages, and the history is the first table written."""
    events: list[tuple[str, str]] = []
    stage, insert = publish_module._stage, publish_module.insert_rows

    def staging(con):  # type: ignore[no-untyped-def]
        events.append(("stage", threading.current_thread().name))
        stage(con)

    def inserting(conn, table, columns, rows):  # type: ignore[no-untyped-def]
        events.append((f"insert {table.name}", threading.current_thread().name))
        insert(conn, table, columns, rows)

    monkeypatch.setattr(publish_module, "_stage", staging)
    monkeypatch.setattr(publish_module, "insert_rows", inserting)
    publish_run(write_demo_run(tmp_path / "run", persons=30), str(tmp_path / "store.db"))
    assert ("stage", "publish-rows") in events
    inserts = [name for name, _ in events if name.startswith("insert")]
    assert inserts[0] == f"insert {schema.tier_history.name}"
    assert {schema.patients.name, schema.search_terms.name} <= {name.split()[1] for name in inserts}


def test_awkward_text_is_stored_the_same_on_every_backend(tmp_path: Path, store_url: str) -> None:
    """PostgreSQL takes the rows as CSV written by DuckDB (CsvRows), SQLite as Python tuples: commas,
    quotes, line breaks, backslashes, leading spaces, an empty string and a missing value in the persons'
    text must come out of both stores the same (an empty string is not NULL)."""
    run = write_demo_run(tmp_path / "run", persons=12)
    persons = pd.read_parquet(run / "canonical" / "persons.parquet")
    awkward = ['Wang, "Ming"', "line\nbreak", "\\N", "  leading", "", None, "tab\there", "引号'单", "\\."]
    awkward.append("x\r\ny")
    persons.loc[: len(awkward) - 1, "name"] = awkward
    persons.loc[:2, "phone"] = ["", None, '13"1']
    persons.to_parquet(run / "canonical" / "persons.parquet", index=False)
    publish_run(run, store_url)
    reference = str(tmp_path / "reference.db")
    publish_run(run, reference)
    run_id = json.loads((run / "run.json").read_text(encoding="utf-8"))["run_id"]
    assert table_digests(store_url, run_id) == table_digests(reference, run_id)
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(select(schema.patients.c.person_id, schema.patients.c.name)).all())
    finally:
        engine.dispose()
    assert [names[p] for p in persons["person_id"][: len(awkward)]] == awkward


def test_a_new_runs_search_terms_load_beside_and_roll_back_with_the_patients(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the search terms of a new run load on their own connection while the patient rows
    load (as CSV); when the main load fails after the terms are in, neither commits: no row of the failed
    run is left and the previous run stays current. SQLite loads everything in one transaction."""
    old = _run(tmp_path / "old", seed=1, run_id="old", as_of=date(2024, 11, 30))
    publish_run(old, store_url)
    threads: dict[str, set[str]] = {}
    formats: set[str] = set()
    insert = publish_module.insert_rows

    def spying(conn, table, columns, rows):  # type: ignore[no-untyped-def]
        threads.setdefault(table.name, set()).add(threading.current_thread().name)
        formats.add(type(rows).__name__)
        insert(conn, table, columns, rows)

    def failing_cascade(conn, run, run_id):  # type: ignore[no-untyped-def]
        raise OSError("disk full")  # after every patient row, before the main load commits

    monkeypatch.setattr(publish_module, "insert_rows", spying)
    monkeypatch.setattr(publish_module, "_load_cascade", failing_cascade)
    with pytest.raises(OSError):
        publish_run(_run(tmp_path / "new", seed=2, run_id="new"), store_url)
    postgres = not store_url.endswith(".db")
    if postgres:
        assert threads[schema.search_terms.name] == {f"publish-{schema.search_terms.name}"}
        assert formats == {"CsvRows"}
    else:
        assert threads[schema.search_terms.name] == threads[schema.patients.name]
        assert formats == {"list"}
    assert not [t for t in threading.enumerate() if t.name.startswith("publish-")]
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            assert queries.current_run(conn)["run_id"] == "old"
            for table in (*TABLES, schema.runs):
                stray = select(func.count()).select_from(table).where(table.c.run_id == "new")
                # the run's registration (state loading) is removed by the next publish
                assert conn.execute(stray).scalar_one() == (1 if table is schema.runs else 0)
    finally:
        engine.dispose()
    monkeypatch.setattr(publish_module, "_load_cascade", lambda *args: 0)
    assert publish_run(_run(tmp_path / "new", seed=2, run_id="new"), store_url).persons == PERSONS


def test_a_value_the_store_refuses_fails_the_publish_without_quoting_it(
    tmp_path: Path, store_url: str
) -> None:
    """PostgreSQL's COPY error quotes the row's value (CONTEXT: ... column phone: "..."), and it came out
    of psycopg's cursor, past the handler for SQLAlchemy's errors: a traceback with a phone number in it."""
    old = _run(tmp_path / "old", seed=1, run_id="old", as_of=date(2024, 11, 30))
    publish_run(old, store_url)
    run = _run(tmp_path / "new", seed=2, run_id="new")
    persons = pd.read_parquet(run / "canonical" / "persons.parquet")
    persons.loc[3, "phone"] = "1390000" + "7" * 40  # longer than the store's phone column (32)
    persons.to_parquet(run / "canonical" / "persons.parquet", index=False)
    if store_url.endswith(".db"):  # SQLite does not enforce the length
        assert publish_run(run, store_url).persons == PERSONS
        return
    with pytest.raises(publish_module.PublishError) as refused:
        publish_run(run, store_url)
    assert "7777" not in str(refused.value) and "current run is unchanged" in str(refused.value)
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            assert queries.current_run(conn)["run_id"] == "old"
    finally:
        engine.dispose()


def test_readings_at_the_same_time_are_listed_in_file_order(tmp_path: Path, store_url: str) -> None:
    """A fasting glucose and an HbA1c drawn at the same instant (as Synthea's FHIR bundles record them)
    came out in either order, depending on DuckDB's threads: the same run gave other series text on
    SQLite and PostgreSQL. They are listed in the file's order."""
    run = write_demo_run(tmp_path / "run", persons=6, readings=5)
    labs = pd.read_parquet(run / "canonical" / "labs.parquet")
    first = labs[labs["person_id"] == labs["person_id"].iloc[0]].iloc[[0]]
    twins = pd.concat([first.assign(test="hba1c", value=6.5, unit="%"), first.assign(value=7.1)])
    pd.concat([twins, labs]).to_parquet(run / "canonical" / "labs.parquet", index=False)
    publish_run(run, store_url)
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            series = conn.execute(
                select(schema.patients.c.glucose_series).where(
                    schema.patients.c.person_id == first["person_id"].iloc[0]
                )
            ).scalar_one()
    finally:
        engine.dispose()
    day = str(first["measured_at"].iloc[0].date())
    assert [(i["test"], i["value"]) for i in json.loads(series) if i["date"] == day][:2] == [
        ("hba1c", 6.5),
        ("fpg", 7.1),
    ]
