"""Capacity (issue 15 item 4): a unit's workload per week against a county capacity; capacity schedules
in the one priority order and never pushes an emergency; the red share is flagged, never enforced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from risk import definitions
from risk.errors import DefinitionError
from risk.tiers import assign_rule_tiers, load_rule_set
from risk.tiers.priority import finish_priority
from risk.tiers.workload import (
    plan_visits,
    red_share_check,
    workload_summary,
    workload_table,
    workload_unit,
)
from tests.support.rules import AS_OF, base_row, days_ago, frame


def _settings(visits: int, weeks: int = 2, per_unit: dict | None = None) -> dict:
    base = definitions.capacity_settings()
    return {
        **base,
        "workload": {
            **base["workload"],
            "visits_per_week": visits,
            "weeks": weeks,
            "per_unit": per_unit or {},
        },
    }


def _team(rows: list[dict]) -> pd.DataFrame:
    features = frame(*rows)
    tiers = assign_rule_tiers(features)
    tiers["tier"] = tiers["tier_rules"]
    tiers = finish_priority(tiers, features, load_rule_set().intervals, AS_OF)
    return tiers.assign(team_id="T1")


def test_an_emergency_is_never_pushed_past_capacity():
    # capacity 1 a week; three emergencies, two overdue greens and a red due now, all for week 1
    rows = [
        base_row(fu_last_date=days_ago(200), fu_days_since_last=200),
        base_row(fu_last_date=days_ago(150), fu_days_since_last=150),
        base_row(cx_stroke=True, cx_count=1),
        base_row(bp_last_sbp=185.0),
        base_row(fpg_last=17.5, has_diabetes_t2=True),
        base_row(fu_last_danger_symptoms=True),
    ]
    tiers = _team(rows)
    assert int((tiers["urgency"] == 3).sum()) == 3
    plan = plan_visits(tiers, "team_id", AS_OF, _settings(visits=1, weeks=2))
    emergencies = plan[plan["emergency"]]
    assert len(emergencies) == 3 and (emergencies["planned_week"] == 1).all()
    # nobody else fits: week 1 is full of emergencies, week 2 takes one, the rest are pushed later
    others = plan[~plan["emergency"]].set_index("person_id")["planned_week"]
    assert sorted(others.tolist()) == [2, 3, 3]
    # the red (higher in the priority order) gets the week-2 slot before the overdue greens
    assert others["P00002"] == 2
    table = workload_table(tiers, "team_id", AS_OF, _settings(visits=1, weeks=2))
    week1 = table[table["week"] == 1].iloc[0]
    assert week1["emergencies"] == 3 and week1["planned"] == 3 and week1["over_capacity"]
    assert week1["due"] == 6 and week1["red_due"] == 4 and week1["pushed_to_later_week"] == 3
    summary = workload_summary(table, "team_id", _settings(visits=1, weeks=2))
    assert summary["units_with_emergencies_over_capacity"] == 1 and summary["pushed_past_horizon"] == 2


def test_room_in_capacity_plans_every_patient_in_the_week_due():
    rows = [base_row(cx_stroke=True, cx_count=1), base_row(bp_last_sbp=185.0), base_row()]
    tiers = _team(rows)
    plan = plan_visits(tiers, "team_id", AS_OF, _settings(visits=50, weeks=4))
    due = plan[plan["due_week"] > 0]
    assert (due["planned_week"] == due["due_week"]).all()
    # the routine green is due 90 days after its visit (60 days from now): outside a 4-week horizon
    assert plan.set_index("person_id").at["P00002", "due_week"] == 0
    table = workload_table(tiers, "team_id", AS_OF, _settings(visits=50, weeks=4))
    assert len(table) == 4 and not table["over_capacity"].any()


def test_per_unit_capacity_and_unit_column():
    rows = [base_row(fu_last_date=days_ago(200), fu_days_since_last=200) for _ in range(3)]
    tiers = _team(rows)
    tiers["team_id"] = ["A", "A", "B"]
    table = workload_table(tiers, "team_id", AS_OF, _settings(visits=5, weeks=1, per_unit={"A": 1}))
    row = table.set_index("unit")
    assert row.at["A", "capacity"] == 1 and bool(row.at["A", "over_capacity"])
    assert row.at["B", "capacity"] == 5 and not bool(row.at["B", "over_capacity"])
    assert workload_unit(["person_id", "team_id"]) == "team_id"
    assert workload_unit(["doctor_id", "team_id"]) == "doctor_id"


def test_red_share_is_flagged_not_enforced():
    tiers = pd.DataFrame({"tier_rules": ["red"] * 2 + ["green"] * 8, "tier": ["red"] * 1 + ["green"] * 9})
    check = red_share_check(tiers, _settings(visits=50))
    assert check["rules"] == pytest.approx(0.2) and check["combined"] == pytest.approx(0.1)
    assert check["exceeded"] == ["rules"] and check["maximum"] == 0.15


def test_capacity_settings_are_checked(tmp_path):
    path = tmp_path / "capacity.yaml"
    path.write_text("workload: {unit: team_id, visits_per_week: -3, weeks: 4}\nred_share: {maximum: 0.1}\n")
    with pytest.raises(DefinitionError, match="visits_per_week"):
        definitions.capacity_settings(path)
    path.write_text("workload: {unit: team_id, visits_per_week: 30, weeks: 4}\nred_share: {maximum: 15}\n")
    with pytest.raises(DefinitionError, match="red_share.maximum"):
        definitions.capacity_settings(path)
    settings = definitions.capacity_settings()
    assert settings["workload"]["visits_per_week"] == 50 and np.isclose(
        settings["red_share"]["maximum"], 0.15
    )


def test_nightly_writes_the_workload_view_and_the_api_serves_it_to_the_team(small_run, tmp_path):
    import json

    from fastapi.testclient import TestClient

    from risk.serving.api import create_app
    from risk.serving.auth import add_user
    from risk.serving.publish import publish_run
    from risk.serving.store import open_store

    manifest = json.loads((small_run / "run.json").read_text(encoding="utf-8"))
    assert manifest["workload"]["unit"] == "team_id" and manifest["workload"]["visits_per_week"] == 50
    assert set(manifest["red_share"]) >= {"maximum", "rules", "combined", "exceeded"}
    table = pd.read_csv(small_run / "lists" / "workload.csv", encoding="utf-8-sig")
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    teams = pd.read_parquet(small_run / "features.parquet", columns=["person_id", "team_id"])
    assert set(table["team_id"]) == set(teams["team_id"])
    assert table["emergencies"].sum() == int((tiers["urgency"] == 3).sum())
    assert "## Workload and capacity" in (small_run / "summary.md").read_text(encoding="utf-8")

    team = teams["team_id"].value_counts().index[0]
    store = f"sqlite:///{tmp_path / 'store.db'}"
    publish_run(small_run, store)
    token = add_user(open_store(store), "doc", "team", team_id=team)
    other = add_user(open_store(store), "doc2", "team", team_id="NOT-" + team)
    client = TestClient(create_app(store))
    got = client.get(f"/api/teams/{team}/workload", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    body = got.json()
    expected = table[table["team_id"] == team].sort_values("week")
    assert [w["due"] for w in body["weeks"]] == expected["due"].tolist()
    assert [w["red_due"] for w in body["weeks"]] == expected["red_due"].tolist()
    denied = client.get(f"/api/teams/{team}/workload", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403
    client.close()


def test_the_workload_is_planned_without_writing_and_written_as_exported(tmp_path):
    """The nightly plans the workload while the list workers write their workbooks and writes it once
    they are done (the list export counts its files on disk): the same file and figures as export_workload."""
    from risk.products.workload import export_workload, plan_workload

    rows = [base_row(fu_last_date=days_ago(200), fu_days_since_last=200) for _ in range(3)] + [base_row()]
    tiers = _team(rows)
    features = tiers[["person_id", "team_id"]].assign(team_id=["A", "A", "B", "B"])
    tiers = tiers.drop(columns="team_id")
    table, figures = export_workload(tiers, features, AS_OF, tmp_path / "exported")
    planned = plan_workload(tiers, features, AS_OF)
    assert not (tmp_path / "planned").exists()
    planned.write(tmp_path / "planned")
    assert (tmp_path / "planned" / "workload.csv").read_bytes() == (
        tmp_path / "exported" / "workload.csv"
    ).read_bytes()
    assert planned.figures == figures and planned.table.equals(table) and planned.unit == "team_id"
    assert set(pd.read_csv(tmp_path / "planned" / "workload.csv", encoding="utf-8-sig")["team_id"]) == {
        "A",
        "B",
    }
