"""Serving store and lookup API: atomic publish (a reader during publish), tier history across runs, each
role's allowed and refused paths, audit rows, national-ID masking. Runs on SQLite and, when
RISK_TEST_PG_URL is set, on PostgreSQL too."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

import risk.serving.publish as publish_module
from risk.cli import app as cli_app
from risk.errors import InputFileError, RiskUserError
from risk.serving import api as serving_api
from risk.serving import queries, schema
from risk.serving.api import RedactAccessLog, create_app
from risk.serving.auth import User, add_user, revoke_user
from risk.serving.demo import demo_national_id, write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")

PERSONS = 160  # 2 townships x 2 teams: T00 has TEAM000, TEAM001; T01 has TEAM002, TEAM003


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    base = os.environ.get("RISK_TEST_PG_URL")
    if not base:
        if os.environ.get("RISK_REQUIRE_POSTGRES") == "1":
            pytest.fail("RISK_TEST_PG_URL is not set (bash .ci/services.sh prints it)")
        pytest.skip("RISK_TEST_PG_URL not set")
    schema_name = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema_name}"))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema_name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema_name} CASCADE"))
        admin.dispose()


def _run(tmp_path: Path, name: str, seed: int, as_of: date) -> Path:
    return write_demo_run(tmp_path / name, persons=PERSONS, seed=seed, as_of=as_of, run_id=name)


def _tiers(run: Path) -> dict[str, str]:
    frame = pd.read_parquet(run / "tiers.parquet", columns=["person_id", "tier"])
    return dict(zip(frame["person_id"], frame["tier"], strict=True))


def _persons(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "canonical" / "persons.parquet")


@pytest.fixture
def published(tmp_path: Path, store_url: str) -> dict:
    run = _run(tmp_path, "r1", 1, date(2024, 12, 31))
    publish_run(run, store_url)
    engine = open_store(store_url)
    tokens = {
        "team": add_user(engine, "team-a", "team", team_id="TEAM000"),
        "village_doctor": add_user(engine, "vd-a", "village_doctor", team_id="TEAM001"),
        "township": add_user(engine, "town-a", "township", township_id="T00"),
        "county_admin": add_user(engine, "admin", "county_admin"),
        "analyst": add_user(engine, "analyst", "analyst"),
    }
    client = TestClient(create_app(store_url))
    yield {
        "run": run,
        "engine": engine,
        "tokens": tokens,
        "client": client,
        "store": store_url,
        "persons": _persons(run),
    }
    client.close()
    engine.dispose()


def _get(ctx: dict, role: str | None, path: str):
    headers = {"Authorization": f"Bearer {ctx['tokens'][role]}"} if role else {}
    return ctx["client"].get(path, headers=headers)


def _search(ctx: dict, role: str, query: str):
    return ctx["client"].post(
        "/api/search", json={"q": query}, headers={"Authorization": f"Bearer {ctx['tokens'][role]}"}
    )


def _person_in(ctx: dict, team: str) -> pd.Series:
    return ctx["persons"][ctx["persons"]["team_id"] == team].iloc[0]


# --- publish --------------------------------------------------------------------------------------------


def test_publish_loads_every_person_and_a_second_publish_is_a_no_op(tmp_path: Path, store_url: str) -> None:
    run = _run(tmp_path, "r1", 1, date(2024, 12, 31))
    result = publish_run(run, store_url)
    assert (result.run_id, result.persons, result.already_published) == ("r1", PERSONS, False)
    assert result.search_terms >= PERSONS * 4
    assert publish_run(run, store_url).already_published
    engine = open_store(store_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.patients)).scalar_one() == PERSONS
        assert queries.current_run(conn)["run_id"] == "r1"
    engine.dispose()


def test_publish_refuses_a_folder_without_manifest_or_with_clear_national_ids(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="run manifest not found"):
        publish_run(tmp_path, str(tmp_path / "store.db"))
    run = _run(tmp_path, "clear", 1, date(2024, 12, 31))
    persons = _persons(run)
    persons["national_id"] = [demo_national_id(i) for i in range(len(persons))]
    persons.to_parquet(run / "canonical" / "persons.parquet", index=False)
    with pytest.raises(RiskUserError, match="clear national IDs"):
        publish_run(run, str(tmp_path / "store.db"))


def test_reader_during_publish_sees_the_old_run_or_the_new_never_a_mix(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _run(tmp_path, "old", 1, date(2024, 9, 30)), _run(tmp_path, "new", 2, date(2024, 12, 31))
    expected = {"old": _tiers(old), "new": _tiers(new)}
    assert expected["old"] != expected["new"]
    publish_run(old, store_url)
    engine = open_store(store_url)
    admin = User("admin", "county_admin")
    person = "P0000000"
    loading, done = threading.Event(), threading.Event()
    original = publish_module.insert_rows

    def slow_insert(*args, **kwargs):
        original(*args, **kwargs)
        loading.set()
        time.sleep(0.03)

    monkeypatch.setattr(publish_module, "insert_rows", slow_insert)
    monkeypatch.setattr(publish_module, "BATCH_ROWS", 40)
    observations: list[tuple[bool, str]] = []
    errors: list[str] = []

    def reader() -> None:
        while not done.is_set():
            during = loading.is_set()
            with engine.begin() as conn:
                run_id, rows = queries.team_priority_list(conn, admin, "TEAM000")
                view_run, view = queries.patient_view(conn, admin, person)
                hits = queries.search(conn, admin, "P00000")[1]
            tiers = expected[run_id]
            if len(rows) != PERSONS // 4 or any(r["tier"] != tiers[r["person_id"]] for r in rows):
                errors.append(f"team list mixes runs while {run_id} is current")
            if (
                view_run != run_id
                or view["tier"] != tiers[person]
                or view["history"][-1]["tier"] != view["tier"]
            ):
                errors.append(f"patient view mixes runs while {run_id} is current")
            if any(h["tier"] != tiers[h["person_id"]] for h in hits):
                errors.append("search mixes runs")
            observations.append((during and not done.is_set(), run_id))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        publish_run(new, store_url)
    finally:
        done.set()
        thread.join()
    with engine.begin() as conn:
        final_run, _ = queries.patient_view(conn, admin, person)
    engine.dispose()
    assert errors == []
    assert "old" in {run for during, run in observations if during}, "no read happened during the publish"
    assert final_run == "new"


def test_publish_that_dies_half_way_leaves_readers_on_the_old_run_and_is_cleaned_up(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _run(tmp_path, "old", 1, date(2024, 9, 30)), _run(tmp_path, "new", 2, date(2024, 12, 31))
    publish_run(old, store_url)
    original = publish_module.insert_rows
    calls = {"n": 0}

    def dying_insert(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        original(*args, **kwargs)

    monkeypatch.setattr(publish_module, "insert_rows", dying_insert)
    monkeypatch.setattr(publish_module, "BATCH_ROWS", 40)
    with pytest.raises(OSError):
        publish_run(new, store_url)
    engine = open_store(store_url)
    with engine.connect() as conn:
        assert queries.current_run(conn)["run_id"] == "old"
    monkeypatch.setattr(publish_module, "insert_rows", original)
    assert publish_run(new, store_url).persons == PERSONS
    with engine.connect() as conn:
        assert queries.current_run(conn)["run_id"] == "new"
        new_rows = select(func.count()).select_from(schema.patients).where(schema.patients.c.run_id == "new")
        assert conn.execute(new_rows).scalar_one() == PERSONS
    engine.dispose()


def test_tier_history_is_kept_across_runs_while_old_patient_rows_are_pruned(
    tmp_path: Path, store_url: str
) -> None:
    runs = [_run(tmp_path, f"r{i}", i, date(2024, 3 * i + 3, 28)) for i in range(3)]
    results = [publish_run(run, store_url, keep_runs=2) for run in runs]
    assert results[-1].pruned_runs == ["r0"]
    engine = open_store(store_url)
    with engine.begin() as conn:
        _, view = queries.patient_view(conn, User("admin", "county_admin"), "P0000005")
        kept = conn.execute(select(schema.patients.c.run_id).distinct()).scalars().all()
    engine.dispose()
    assert sorted(kept) == ["r1", "r2"]
    assert [h["run_id"] for h in view["history"]] == ["r0", "r1", "r2"]
    assert [h["tier"] for h in view["history"]] == [_tiers(run)["P0000005"] for run in runs]
    assert [str(h["as_of"]) for h in view["history"]] == ["2024-03-28", "2024-06-28", "2024-09-28"]


# --- access control -------------------------------------------------------------------------------------


def test_missing_malformed_and_revoked_tokens_get_401(
    published: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = published["client"]
    assert _get(published, "team", "/api/me").status_code == 200
    assert client.get("/api/patients/P0000000").status_code == 401
    for token in ("nonsense", "rk_0000000000000000.wrong", published["tokens"]["team"] + "x"):
        response = client.get("/api/patients/P0000000", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    revoke_user(published["engine"], "team-a")
    monkeypatch.setattr(serving_api, "TOKEN_CACHE_SECONDS", 0.0)  # expire the cached token now
    assert _get(published, "team", "/api/me").status_code == 401
    assert client.get("/api/health").json()["persons"] == PERSONS  # health needs no token


@pytest.mark.parametrize(
    ("role", "allowed_team", "refused_team"),
    [
        ("team", "TEAM000", "TEAM001"),
        ("village_doctor", "TEAM001", "TEAM002"),
        ("township", "TEAM001", "TEAM002"),
        ("county_admin", "TEAM003", None),
    ],
)
def test_each_clinical_role_reads_its_scope_and_is_refused_outside(
    published: dict, role: str, allowed_team: str, refused_team: str | None
) -> None:
    inside = _person_in(published, allowed_team)
    view = _get(published, role, f"/api/patients/{inside['person_id']}")
    assert view.status_code == 200
    assert view.json()["tier"] in ("red", "yellow", "green")
    assert _search(published, role, inside["name"]).status_code == 200
    assert inside["person_id"] in [
        r["person_id"] for r in _search(published, role, inside["name"]).json()["results"]
    ]
    priority = _get(published, role, f"/api/teams/{allowed_team}/priority")
    assert priority.status_code == 200
    assert {p["team_id"] for p in priority.json()["patients"]} == {allowed_team}
    missing = _get(published, role, "/api/patients/P9999999")
    if refused_team is None:
        assert missing.status_code == 404
        return
    outside = _person_in(published, refused_team)
    refused = _get(published, role, f"/api/patients/{outside['person_id']}")
    assert refused.status_code == 403
    # Out of scope and non-existent are indistinguishable for a scoped user.
    assert (missing.status_code, missing.content) == (refused.status_code, refused.content)
    assert _get(published, role, f"/api/teams/{refused_team}/priority").status_code == 403
    found = _search(published, role, outside["person_id"]).json()["results"]
    assert outside["person_id"] not in [r["person_id"] for r in found]


def test_analyst_gets_aggregates_and_no_patient_level_endpoint(published: dict) -> None:
    person = _person_in(published, "TEAM000")
    assert _get(published, "analyst", f"/api/patients/{person['person_id']}").status_code == 403
    assert _get(published, "analyst", "/api/teams/TEAM000/priority").status_code == 403
    assert _search(published, "analyst", person["name"]).status_code == 403
    aggregates = _get(published, "analyst", "/api/aggregates")
    assert aggregates.status_code == 200
    assert sum(aggregates.json()["totals"].values()) == PERSONS
    assert "person_id" not in aggregates.text
    town = _get(published, "township", "/api/aggregates").json()
    assert {row["township_id"] for row in town["by_team"]} == {"T00"}


def test_user_creation_rejects_bad_roles_missing_scope_and_duplicates(published: dict) -> None:
    engine = published["engine"]
    with pytest.raises(RiskUserError, match="unknown role"):
        add_user(engine, "x", "superuser")
    with pytest.raises(RiskUserError, match="needs --team"):
        add_user(engine, "x", "village_doctor")
    with pytest.raises(RiskUserError, match="needs --township"):
        add_user(engine, "x", "township")
    with pytest.raises(RiskUserError, match="already exists"):
        add_user(engine, "admin", "county_admin")
    with engine.connect() as conn:
        stored = conn.execute(select(schema.users.c.token_hash, schema.users.c.token_salt)).all()
    secrets_in_clear = {token.split(".", 1)[1] for token in published["tokens"].values()}
    assert not any(value in secrets_in_clear for row in stored for value in row)


# --- audit and privacy ----------------------------------------------------------------------------------


def test_every_patient_level_read_is_audited(published: dict) -> None:
    inside, outside = _person_in(published, "TEAM000"), _person_in(published, "TEAM002")
    _get(published, "team", f"/api/patients/{inside['person_id']}")
    _get(published, "team", f"/api/patients/{outside['person_id']}")
    hits = _search(published, "team", inside["name"]).json()["results"]
    listed = _get(published, "team", "/api/teams/TEAM000/priority").json()["patients"]
    _get(published, "county_admin", "/api/patients/P9999999")
    with published["engine"].connect() as conn:
        rows = conn.execute(select(schema.audit).order_by(schema.audit.c.audit_id)).mappings().all()
    by_endpoint: dict[tuple[str, str, str], list] = {}
    for row in rows:
        by_endpoint.setdefault((row["user_name"], row["endpoint"], row["outcome"]), []).append(
            row["person_id"]
        )
        assert row["run_id"] in ("r1", None) and row["at"] is not None
    assert by_endpoint[("team-a", "patient", "ok")] == [inside["person_id"]]
    assert by_endpoint[("team-a", "patient", "denied")] == [outside["person_id"]]
    assert by_endpoint[("team-a", "search", "ok")] == [h["person_id"] for h in hits]
    assert by_endpoint[("team-a", "priority", "ok")] == [p["person_id"] for p in listed]
    assert by_endpoint[("admin", "patient", "not_found")] == ["P9999999"]


def test_national_ids_are_never_stored_or_returned_in_clear(published: dict) -> None:
    persons = published["persons"]
    index = int(persons.index[persons["team_id"] == "TEAM000"][0])
    clear = demo_national_id(index)
    person_id = persons.loc[index, "person_id"]
    view = _get(published, "team", f"/api/patients/{person_id}")
    assert clear not in view.text and "national_id_hash" not in view.text
    assert view.json()["national_id_masked"] == "*" * 16 + clear[-2:]
    by_full_id = _search(published, "team", clear.lower()).json()["results"]
    assert [r["person_id"] for r in by_full_id] == [person_id]
    assert clear not in json.dumps(by_full_id)
    by_last4 = _search(published, "team", clear[-4:]).json()["results"]
    assert person_id not in [r["person_id"] for r in by_last4]  # no part of the ID is a search term
    with published["engine"].connect() as conn:
        for table in (schema.patients, schema.search_terms, schema.audit):
            for row in conn.execute(select(table)).all():
                assert not any(isinstance(v, str) and clear in v for v in row)


def test_search_matches_name_phone_and_id_prefixes_within_scope(published: dict) -> None:
    person = _person_in(published, "TEAM000")
    for query in (
        person["name"],
        person["name"][:1],
        person["phone"],
        person["phone"][:7],
        person["phone"][-4:],
        person["person_id"].lower(),
        f" {person['phone'][:3]} {person['phone'][3:]}",
    ):
        results = _search(published, "team", query).json()["results"]
        assert all(r["team_id"] == "TEAM000" for r in results), query
        if query != person["name"][:1]:
            assert person["person_id"] in [r["person_id"] for r in results], query
        assert all(r["phone_masked"] is None or "****" in r["phone_masked"] for r in results)
    assert _search(published, "team", "没有这个人").json()["results"] == []


def test_patient_view_has_tiers_reasons_series_history_and_thresholds(published: dict) -> None:
    person = _person_in(published, "TEAM000")
    view = _get(published, "team", f"/api/patients/{person['person_id']}").json()
    tiers = (
        pd.read_parquet(published["run"] / "tiers.parquet").set_index("person_id").loc[person["person_id"]]
    )
    assert (view["tier"], view["tier_rules"], view["tier_model"]) == (
        tiers["tier"],
        tiers["tier_rules"],
        tiers["tier_model"],
    )
    assert view["reasons"] == json.loads(tiers["reasons"]) and {"zh", "en"} <= set(view["reasons"][0])
    assert len(view["bp_series"]) == 8 and view["bp_series"] == sorted(
        view["bp_series"], key=lambda r: r["date"]
    )
    assert view["last_measurements"]["sbp"]["value"] == view["bp_series"][-1]["sbp"]
    assert view["thresholds"] == {"sbp": 140.0, "dbp": 90.0, "fpg": 7.0}
    assert view["history"][0]["run_id"] == "r1" and view["next_due_on"] == str(tiers["next_due_on"])
    assert view["phone"] == person["phone"]


def test_openapi_spec_lists_the_endpoints(published: dict) -> None:
    paths = published["client"].get("/api/openapi.json").json()["paths"]
    assert {
        "/api/patients/{person_id}",
        "/api/search",
        "/api/teams/{team_id}/priority",
        "/api/aggregates",
        "/api/health",
    } <= set(paths)
    page = published["client"].get("/")
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text


def test_access_log_lines_carry_no_query_strings_or_person_ids() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/patients/P0000001?q=%E7%8E%8B", "1.1", 200),
        None,
    )
    RedactAccessLog().filter(record)
    assert "P0000001" not in record.getMessage() and "q=" not in record.getMessage()
    assert "/api/patients/" in record.getMessage()


# --- command line ---------------------------------------------------------------------------------------


def test_cli_publish_users_add_and_clean_errors(tmp_path: Path) -> None:
    run = _run(tmp_path, "cli", 3, date(2024, 12, 31))
    store = str(tmp_path / "cli.db")
    runner = CliRunner()
    published = runner.invoke(cli_app, ["publish", str(run), "--store", store])
    assert published.exit_code == 0 and "160 persons" in published.output
    added = runner.invoke(
        cli_app, ["users", "add", "dr-wang", "--role", "team", "--team", "TEAM000", "--store", store]
    )
    assert added.exit_code == 0
    token = added.output.strip().splitlines()[-1]
    client = TestClient(create_app(store))
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["team_id"] == "TEAM000"
    bad = runner.invoke(cli_app, ["users", "add", "x", "--role", "team", "--store", store])
    assert bad.exit_code == 2 and "needs --team" in bad.output
    missing = runner.invoke(cli_app, ["serve", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_patient_view_carries_the_model_probability_and_reasons_of_a_real_run(
    small_run: Path, tmp_path: Path
) -> None:
    """Published from a real nightly run (rules + committed model): the clinician sees why the model
    rates the patient, in both languages, next to the rule reasons."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    publish_run(small_run, store)
    engine = open_store(store)
    token = add_user(engine, "admin", "county_admin")
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    scored = tiers[tiers["model_reasons"].fillna("[]") != "[]"]
    assert len(scored) > 0
    person = scored.iloc[0]
    client = TestClient(create_app(store))
    view = client.get(f"/api/patients/{person['person_id']}",
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert view["model_probability"] == pytest.approx(person["model_probability"])
    assert view["combine_reason"] == person["combine_reason"]
    expected = json.loads(person["model_reasons"])
    assert [r["feature"] for r in view["model_reasons"]] == [r["feature"] for r in expected]
    assert all(r["zh"] and r["en"] for r in view["model_reasons"])


@pytest.mark.slow
def test_serve_with_two_worker_processes_answers_health(small_run: Path, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import threading
    import time

    import httpx

    store = f"sqlite:///{tmp_path / 'store.db'}"
    publish_run(small_run, store)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "risk.cli", "serve", "--store", store, "--port", str(port),
               "--workers", "2"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).json()
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health is not None and health["status"] == "ok"
        # the first worker may answer before the second has started: wait for both (not for a fixed time)
        while time.monotonic() < deadline and sum("Started server process" in line for line in lines) < 2:
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=30)
    assert sum("Started server process" in line for line in lines) == 2


def test_a_store_from_an_older_version_is_upgraded_by_publish_keeping_users(
    tmp_path: Path, store_url: str
) -> None:
    """A store created before patients.model_reasons existed: readers get a clear error, publish adds the
    column, and users (and everything else) stay."""
    from sqlalchemy import inspect as inspect_schema

    from risk.serving.auth import add_user
    from risk.serving.store import StoreError

    engine = open_store(store_url, create=True)
    add_user(engine, "doctor1", "team", team_id="TEAM000")
    with engine.begin() as conn:  # what an older version created: no model_reasons column
        conn.execute(text("ALTER TABLE serving_patients DROP COLUMN model_reasons"))
    engine.dispose()
    with pytest.raises(StoreError, match="older version.*serving_patients.model_reasons"):
        open_store(store_url)
    engine = open_store(store_url, create=True)
    assert "model_reasons" in {c["name"] for c in inspect_schema(engine).get_columns("serving_patients")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM serving_users")).scalar_one() == 1
    engine.dispose()
    open_store(store_url).dispose()  # readers are satisfied again


def test_password_login_session_cookie_csrf_and_bearer_kept(published: dict) -> None:
    from risk.serving.auth import set_password

    set_password(published["engine"], "vd-a", "village-pass-1")
    client = published["client"]
    assert client.post("/api/login", json={"username": "vd-a", "password": "nope-nope"}).status_code == 401
    assert client.post("/api/login", json={"username": "nobody", "password": "nope-nope"}).status_code == 401
    answer = client.post("/api/login", json={"username": "vd-a", "password": "village-pass-1"})
    assert answer.status_code == 200
    header = answer.headers["set-cookie"]
    assert "risk_session=" in header and "HttpOnly" in header and "SameSite=strict" in header
    csrf = answer.json()["csrf_token"]
    assert client.get("/api/me").json()["name"] == "vd-a"  # the cookie alone reads
    # a POST with the cookie but without the session's CSRF token is refused; with it, it works
    assert client.post("/api/search", json={"q": "a"}).status_code == 403
    assert client.post("/api/search", json={"q": "a"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/api/search", json={"q": "a"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    # machine clients keep their bearer tokens
    assert _get(published, "team", "/api/me").json()["name"] == "team-a"
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    assert client.get("/api/me").status_code == 401
    # the stored session is a hash, never the cookie value
    with published["engine"].connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT session_hash FROM serving_sessions"))]
    assert header.split("risk_session=")[1].split(";")[0] not in stored


def test_a_call_result_from_the_web_page_needs_the_sessions_csrf_token(published: dict) -> None:
    """The result form on the patient card / team list posts with the session cookie (password login): a
    forged or missing CSRF token is refused before anything is recorded; the page's token records it."""
    from risk.serving.auth import set_password

    set_password(published["engine"], "vd-a", "village-pass-1")
    client = published["client"]
    login = {"username": "vd-a", "password": "village-pass-1"}
    csrf = client.post("/api/login", json=login).json()["csrf_token"]
    persons = published["persons"]
    person = persons.loc[persons["team_id"] == "TEAM001", "person_id"].iloc[0]
    path = f"/api/patients/{person}/calls"
    body = {"result_id": "web-csrf-1", "result": "visited", "sbp": 128, "dbp": 82, "channel": "web"}
    assert client.post(path, json=body).status_code == 403
    assert client.post(path, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.get(path).json()["calls"] == []  # nothing recorded by the refused posts
    assert client.post(path, json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    calls = client.get(path).json()["calls"]
    assert [c["result_id"] for c in calls] == ["web-csrf-1"] and calls[0]["sbp"] == 128


def test_lock_out_after_repeated_failures_and_reset_unlocks(published: dict) -> None:
    from risk.serving.auth import MAX_FAILED_LOGINS, set_password

    set_password(published["engine"], "vd-a", "village-pass-1")
    client = published["client"]
    codes = [client.post("/api/login", json={"username": "vd-a", "password": f"wrong-{i}"}).status_code
             for i in range(MAX_FAILED_LOGINS)]
    assert codes == [401] * (MAX_FAILED_LOGINS - 1) + [423]
    # locked: even the right password is refused until the lock ends or the password is reset
    right = {"username": "vd-a", "password": "village-pass-1"}
    assert client.post("/api/login", json=right).status_code == 423
    set_password(published["engine"], "vd-a", "village-pass-2")
    assert client.post("/api/login", json={**right, "password": "village-pass-2"}).status_code == 200


def test_cli_users_add_sets_and_resets_a_password(published: dict) -> None:
    from risk.serving.auth import check_password

    runner = CliRunner()
    app = cli_app
    store = published["store"]
    made = runner.invoke(app, ["users", "add", "doctor-wang", "--role", "village_doctor", "--team", "TEAM000",
                               "--store", store, "--password"], input="first-pass-1\nfirst-pass-1\n")
    assert made.exit_code == 0, made.output
    assert "rk_" in made.output and "password for doctor-wang set" in made.output
    assert check_password(published["engine"], "doctor-wang", "first-pass-1") is not None
    again = runner.invoke(app, ["users", "add", "doctor-wang", "--store", store])
    assert again.exit_code == 2 and "already exists" in again.output
    reset = runner.invoke(app, ["users", "add", "doctor-wang", "--store", store, "--password"],
                          input="second-pass-2\nsecond-pass-2\n")
    assert reset.exit_code == 0 and "reset" in reset.output and "rk_" not in reset.output
    assert check_password(published["engine"], "doctor-wang", "first-pass-1") is None
    assert check_password(published["engine"], "doctor-wang", "second-pass-2") is not None
    short = runner.invoke(app, ["users", "add", "doctor-wang", "--store", store, "--password"],
                          input="short\nshort\n")
    assert short.exit_code == 2 and "at least 8" in short.output
