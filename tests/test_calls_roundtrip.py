"""Round trip of the follow-up loop on a small synthetic county: nightly + publish -> results by API and by
the exported workbook itself -> next nightly -> call list, features and home-visit/registry outputs reflect
each result exactly (hand-counted against the same run's list without results)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from pipelines.calls import run_calls
from pipelines.nightly import NightlyOptions, run_nightly
from risk.products.lists import file_stem
from risk.serving.api import create_app
from risk.serving.auth import add_user
from risk.serving.call_results import import_results_file
from risk.serving.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:RISK_ID_KEY")]
AS_OF, NEXT = date(2024, 6, 30), date(2024, 7, 10)


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from risk.synth import SynthConfig, generate_county

    out = tmp_path_factory.mktemp("calls") / "input"
    generate_county(SynthConfig(persons=4000, seed=3, start=date(2021, 1, 1), end=date(2024, 6, 30)), out)
    return out


def test_results_by_api_and_by_file_steer_the_next_nightly(county: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    options = {"input_dir": county, "use_model": False, "store_url": store, "call_capacity": 1000}
    r1 = run_nightly(NightlyOptions(as_of=AS_OF, out=tmp_path / "r1", **options)).run_dir
    calls = pd.read_csv(r1 / "calls" / "calls.csv", dtype=str, keep_default_na=False)
    team = calls["team_id"].value_counts().index[0]
    mine = calls[calls["team_id"] == team]
    a, b, c, d, e = mine["person_id"].iloc[:5]
    engine = open_store(store)
    token = add_user(engine, "vd", "village_doctor", team_id=team)
    engine.dispose()
    client = TestClient(create_app(store))
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        client.post(
            f"/api/patients/{a}/calls",
            headers=auth,
            json={
                "result_id": "api-a",
                "result": "agreed_to_visit",
                "called_on": "2024-07-01",
                "visit_on": "2024-07-03",
            },
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/patients/{b}/calls",
            headers=auth,
            json={
                "result_id": "api-b",
                "result": "已随访并测量",
                "called_on": "2024-07-02",
                "sbp": 121,
                "dbp": 76,
                "fpg": 5.4,
            },
        ).status_code
        == 201
    )
    client.close()

    # the exported workbook itself, result columns filled in, imports back as it is
    book_path = r1 / "calls" / "xlsx" / f"{file_stem(team)}.xlsx"
    book = load_workbook(book_path)
    filled = {c: ("已死亡", ""), d: ("remind_to_call_later", ""), e: ("移出名单", "Invalid phone number")}
    for sheet in book.worksheets:
        header = [cell.value for cell in sheet[3]]
        col = {name: header.index(name) + 1 for name in ("Person ID", "Result", "Remove reason", "Called on")}
        for row in range(4, sheet.max_row + 1):
            pid = sheet.cell(row, col["Person ID"]).value
            if pid in filled:
                sheet.cell(row, col["Result"]).value, sheet.cell(row, col["Remove reason"]).value = filled[
                    pid
                ]
                sheet.cell(row, col["Called on"]).value = "2024-07-01"
    filled_path = tmp_path / "filled.xlsx"
    book.save(filled_path)
    imported = import_results_file(filled_path, store, as_user="vd", today=NEXT)
    assert (imported.accepted, imported.quarantined) == (3, 0)
    assert import_results_file(filled_path, store, as_user="vd", today=NEXT).duplicates == 3

    r2 = run_nightly(NightlyOptions(as_of=NEXT, out=tmp_path / "r2", **options)).run_dir
    # features: the visit of B is a follow-up with its readings, marked as coming from a call result
    features = pd.read_parquet(r2 / "features.parquet").set_index("person_id")
    assert pd.Timestamp(features.loc[b, "fu_last_date"]) == pd.Timestamp("2024-07-02")
    assert (features.loc[b, "bp_last_sbp"], features.loc[b, "fpg_last"]) == (121.0, 5.4)
    vitals = pd.read_parquet(r2 / "canonical" / "vitals.parquet")
    assert vitals[vitals["origin"] == "call_result"]["person_id"].tolist() == [b]
    # lists: hand count against the same run's list without any result
    baseline = run_calls(r2, NEXT, tmp_path / "baseline", results=None, daily_capacity=1000, xlsx=False)
    assert baseline.export.calls > 0
    base = set(pd.read_csv(tmp_path / "baseline" / "calls.csv", dtype=str)["person_id"])
    now = pd.read_csv(r2 / "calls" / "calls.csv", dtype=str, keep_default_na=False).set_index("person_id")
    assert b not in base and b not in now.index  # visited: next due moved past the week
    assert {a, d} <= base
    assert set(now.index) == base - {c, e}
    assert now.loc[a, "status"] == "约定未到" and now.loc[d, "status"] == "稍后再打到期"
    assert (now.loc[d, "attempts"], now.loc[d, "last_result"]) == ("1", "稍后再打")
    home = pd.read_csv(r2 / "calls" / "home_visits.csv", dtype=str).set_index("person_id")
    assert home.loc[e, "home_visit_reason"] == "invalid_phone"
    registry = pd.read_csv(r2 / "calls" / "registry_suggestions.csv", dtype=str)
    assert registry[["person_id", "registry_change"]].values.tolist() == [[c, "dead"]]

    # the cascade of July (start: r1's due dates) is written, published and served to analysts only
    tiers1 = pd.read_parquet(r1 / "tiers.parquet")
    overdue = int((pd.to_datetime(tiers1["next_due_on"]) < pd.Timestamp("2024-07-01")).sum())
    cascade = pd.read_csv(r2 / "calls" / "cascade.csv", dtype={"result": str}, keep_default_na=False)
    county = cascade[(cascade["level"] == "county") & (cascade["step"] == "overdue_start")]
    assert county[["numerator", "denominator"]].astype(int).values.tolist() == [[overdue, len(tiers1)]]
    called = cascade[(cascade["level"] == "county") & (cascade["step"] == "called")].iloc[0]
    assert called["suppressed"] == "primary"  # at most five patients called: a small cell
    from risk.serving.publish import publish_run

    publish_run(r2, store)
    engine = open_store(store)
    analyst = add_user(engine, "an", "analyst")
    engine.dispose()
    client = TestClient(create_app(store))
    served = client.get("/api/cascade", headers={"Authorization": f"Bearer {analyst}"}).json()["rows"]
    assert len(served) == len(cascade) and {r["month"] for r in served} == {"2024-07"}
    assert client.get("/api/cascade", headers=auth).status_code == 403
    client.close()
    from risk.indicators.cascade import overview_block
    from risk.indicators.overview import TEXT
    from risk.indicators.report import template_environment

    block = overview_block(r2)
    assert block["month"] == "2024-07" and block["units"][0] == "county" and block["headers"][0] == "全县"
    assert block["rows"][0]["cells"][0] == f"{overdue:,}/{len(tiers1):,} ({overdue / len(tiers1):.0%})"
    html = template_environment().get_template("overview.html.j2").render(
        period="2024Q3", headline=[], league=[], league_columns=[], trends=[], league_chart=None, tiers=None,
        cascade=block, min_count=10, methods=[], provenance={}, trend_span="", t=TEXT["zh"], lang="zh",
    )  # fmt: skip
    # Chinese first on the director's page: the step names in Chinese, no file names or English labels
    assert "随访外呼进展（2024-07" in html and block["rows"][0]["name"] in html
    assert "Overdue at the start of the month" not in html and ".yaml" not in html
    english = overview_block(r2, lang="en")
    assert english["headers"][0] == "County" and english["rows"][0]["name"].startswith("Overdue")
    # `risk report call_cascade --store` recomputes the same table from r1, r2 and the stored results
    from typer.testing import CliRunner

    from risk.cli import app

    out = tmp_path / "cascade.csv"
    args = [
        "report",
        "call_cascade",
        "--run",
        str(r2),
        "--out",
        str(out),
        "--store",
        store,
        "--period",
        "2024-07",
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert pd.read_csv(out, dtype=str).equals(pd.read_csv(r2 / "calls" / "cascade.csv", dtype=str))
