"""One priority order (issue 15): urgency, then colour, then days overdue, then risk, then person_id;
the same order on the XLSX and CSV lists, the web team list and the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
from fastapi.testclient import TestClient

from risk import definitions
from risk.evaluation.tier_judgement import capture_at_capacity, judge_tiers, ten_year_bands
from risk.products.lists import file_stem, sheet_names
from risk.serving.api import create_app
from risk.serving.auth import add_user
from risk.serving.publish import publish_run
from risk.serving.store import open_store
from risk.tiers import assign_rule_tiers, load_rule_set
from risk.tiers.priority import combine_phrase, finish_priority, priority_rank
from tests.support.rules import AS_OF, base_row, days_ago, frame


def _tiers(rows: list[dict]) -> pd.DataFrame:
    tiers = assign_rule_tiers(frame(*rows))
    return tiers.assign(tier=tiers["tier_rules"], model_probability=np.nan)


def test_priority_is_urgency_then_colour_then_overdue_then_risk_then_person():
    rows = [
        base_row(),  # green, routine
        base_row(cx_stroke=True, cx_count=1),  # red, due today (30 days after the visit)
        base_row(bp_last_sbp=185.0),  # emergency: due now
        base_row(fu_consecutive_uncontrolled_bp=2, bp_last_sbp=145.0, has_diabetes_t2=False),
        base_row(fu_last_date=days_ago(200), fu_days_since_last=200),  # green, 110 d overdue
        base_row(fu_last_date=days_ago(100), fu_days_since_last=100),  # green, 10 d overdue
        base_row(),  # same as P1: person_id breaks the tie
    ]
    tiers = _tiers(rows)
    order = tiers.assign(p=priority_rank(tiers)).sort_values("p")["person_id"].tolist()
    # emergency, referral (green colour), then due within 2 weeks: red first, then most overdue; then later,
    # the two identical rows in person_id order (frame() numbers rows P00000, P00001, ...)
    assert order == [f"P{i:05d}" for i in (2, 3, 1, 4, 5, 0, 6)]


def test_finish_priority_uses_the_final_colour_and_says_why_the_model_raised_it():
    features = frame(
        base_row(person_id="A", age=60.0),
        base_row(person_id="B", age=61.0),
        base_row(person_id="C", age=62.0),
    )
    tiers = assign_rule_tiers(features)
    tiers["tier"] = ["red", "green", "green"]  # the model raised A from green to red
    tiers["model_probability"] = [0.30, 0.05, 0.10]
    out = finish_priority(tiers, features, load_rule_set().intervals, AS_OF)
    assert out.loc[0, "next_due_on"] == days_ago(0)  # red interval, 30 days after the visit
    first = json.loads(out.loc[0, "reasons"])[0]
    assert first["id"] == "model_risk" and first["tier"] == "red"
    assert "3.0" in first["en"] and "same age and sex" in first["en"] and "同龄同性别" in first["zh"]
    # the green colour sentence never sits on a red card
    assert all(
        r["tier"] != "green" or r["id"] != "low_or_medium_risk" for r in json.loads(out.loc[0, "reasons"])
    )
    assert out["priority"].tolist()[0] == 1


def test_raw_combine_codes_become_sentences():
    assert (
        combine_phrase("model_raised: green -> yellow", "en")
        == "The model predicts a higher risk; colour raised"
    )
    assert combine_phrase("agree", "zh") == "规则与模型一致"
    assert "->" not in combine_phrase("model_raise_capped: green -> yellow (model red)", "en")


def test_feature_and_rule_elderly_targets_agree():
    thresholds = definitions.thresholds()["bp_controlled_elderly"]
    rule_set = load_rule_set()
    assert thresholds["from_age"] == rule_set.thresholds["elderly_age"].value
    assert thresholds["sbp_below"] == rule_set.thresholds["sbp_target_elderly"].value


def test_every_emergency_is_red_and_due_now_and_every_referral_within_14_days():
    rule_set = load_rule_set()
    cases = {
        "emergency": [
            {"bp_last_sbp": 180.0},
            {"bp_last_dbp": 110.0},
            {"fpg_last": 16.7},
            {"fpg_last": 3.9},
            {"fu_last_danger_symptoms": True},
        ],
        "refer": [
            {"fu_consecutive_uncontrolled_bp": 2, "bp_last_sbp": 150.0},
            {"fu_consecutive_uncontrolled_fpg": 2, "fpg_last": 8.0},
            {"cx_new_90d": True},
        ],
    }
    far = {"fu_last_date": days_ago(5), "fu_days_since_last": 5}
    for kind, overrides in cases.items():
        tiers = assign_rule_tiers(frame(*[base_row(**far, **o) for o in overrides]))
        if kind == "emergency":
            assert (tiers["tier_rules"] == "red").all()
            assert (tiers["next_due_on"] == AS_OF).all()
        due_in = [(d - AS_OF).days for d in tiers["next_due_on"]]
        assert max(due_in) <= 14, (kind, due_in)
    assert {r.id for r in rule_set.rules if r.urgency == "refer"} == {
        "bp_uncontrolled_consecutive",
        "fpg_uncontrolled_consecutive",
        "complication_new",
    }


def test_tier_judgement_flags_an_inverted_age_band_and_counts_capture():
    tiers = np.array(["red"] * 10 + ["yellow"] * 10 + ["green"] * 10 + ["red"] * 10 + ["green"] * 10)
    y = np.array([1] * 5 + [0] * 5 + [1] * 2 + [0] * 8 + [0] * 10 + [0] * 10 + [1] * 10)
    groups = pd.DataFrame({"age_band": ["55-64"] * 30 + ["65-74"] * 20})
    judged = judge_tiers(tiers, y, groups, min_events=5)
    assert judged["red_share"] == 0.4
    assert "age_band=65-74: red 0.0%, yellow –, green 100.0%" in judged["violations"]
    assert not any(v.startswith("age_band=55-64") for v in judged["violations"])
    table = judged["table"]
    assert set(table.columns) >= {"event_rate", "low", "high", "share"}
    order = pd.DataFrame({"team_id": ["A"] * 25 + ["B"] * 25, "priority": np.arange(50)})
    captured = capture_at_capacity(order, y, 5)
    assert captured["seen"] == 10 and captured["events_captured"] == 5
    assert ten_year_bands(pd.Series([34, 35, 54.9, 85, 99])).tolist() == [
        "<35",
        "35-44",
        "45-54",
        "85+",
        "85+",
    ]


def test_xlsx_csv_web_list_and_api_give_the_same_order(small_run: Path, tmp_path: Path):
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    assert tiers["priority"].notna().all() and tiers["priority"].is_unique
    team = (
        pd.read_parquet(small_run / "features.parquet", columns=["team_id"])["team_id"]
        .value_counts()
        .index[0]
    )
    # the team CSV carries every field under Chinese headers (docs/lists.md)
    csv = pd.read_csv(
        small_run / "lists" / "teams" / f"{file_stem(team)}.csv", dtype=str, keep_default_na=False
    )
    csv = csv.sort_values("序号", key=lambda s: s.astype(int))
    csv_order = csv["档案号"].tolist()
    expected = (
        tiers.merge(pd.read_parquet(small_run / "features.parquet", columns=["person_id", "team_id"]))
        .query("team_id == @team")
        .sort_values("priority")["person_id"]
        .tolist()
    )
    assert csv_order == expected
    # the printed workbook: one sheet per village, numbered 1..n in the same order (name and phone printed);
    # sheet names come from sheet_names() (the village ID when it is a safe, unique, short name)
    book = openpyxl.load_workbook(small_run / "lists" / "xlsx" / f"{file_stem(team)}.xlsx", read_only=True)
    village_of_sheet = {name: village for village, name in sheet_names(sorted(set(csv["村"]))).items()}
    printed_villages = set()
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        header = next(i for i, r in enumerate(rows) if r and r[0] == "序号")
        body = rows[header + 1 :]
        assert [int(r[0]) for r in body] == list(range(1, len(body) + 1))
        village = csv[csv["村"] == village_of_sheet[sheet.title]]
        listed = list(zip(village["姓名"], village["电话"], strict=True))
        assert [(r[1] or "", r[3] or "") for r in body] == listed
        printed_villages.add(village_of_sheet[sheet.title])
    assert printed_villages == set(csv["村"])
    store = f"sqlite:///{tmp_path / 'store.db'}"
    publish_run(small_run, store)
    token = add_user(open_store(store), "admin", "county_admin")
    client = TestClient(create_app(store))
    # the web team list (app.js) shows exactly this endpoint's rows in this order
    listed = client.get(f"/api/teams/{team}/priority", headers={"Authorization": f"Bearer {token}"}).json()
    assert [p["person_id"] for p in listed["patients"]] == expected[: len(listed["patients"])]
    client.close()


def test_model_reasons_go_on_exactly_the_raised_rows_of_a_larger_table():
    """add_model_reasons edits a plain array (issue 19: per-cell edits of the Arrow column were quadratic);
    every raised row, and only those, gets the model's sentence in place of the rules' colour sentence."""
    from risk.tiers.priority import add_model_reasons

    features = frame(*(base_row(person_id=f"Q{i:03d}", age=55.0 + i % 20) for i in range(60)))
    tiers = assign_rule_tiers(features)
    raised = np.arange(60) % 3 == 1
    tiers["tier"] = np.where(raised, "red", tiers["tier_rules"])
    tiers["model_probability"] = np.linspace(0.01, 0.4, 60)
    tiers.index = tiers.index + 100  # not a 0..n-1 index
    out = add_model_reasons(tiers, features)
    assert list(out.index) == list(tiers.index) and out.dtype == tiers["reasons"].dtype
    for was, now, up in zip(tiers["reasons"], out, raised, strict=True):
        if up:
            assert json.loads(now)[0]["id"] == "model_risk" and json.loads(now)[1:] == json.loads(was)[1:]
        else:
            assert now == was
