"""Rule baseline: each default rule fires on a hand-made case and not on its near miss; aggregation,
follow-up intervals, county copies and the scikit-learn surface."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlglot
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from risk.errors import RiskUserError
from risk.tiers import TIER_RANK, RuleTierClassifier, assign_rule_tiers, load_rule_set
from risk.tiers.rule_engine import evaluate
from tests.support.rules import AS_OF, base_row, days_ago, default_rule_data, frame, write_rule_file

THREE_RISK_FACTORS = {"bp_last_sbp": 145.0, "has_diabetes_t2": False, "age": 60.0, "fu_last_smoker": True}

# rule id -> list of (fires, near miss) feature overrides on base_row()
CASES: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "bp_emergency": [({"bp_last_sbp": 180.0}, {"bp_last_sbp": 179.0}),
                     ({"bp_last_dbp": 110.0}, {"bp_last_dbp": 109.0})],
    "fpg_emergency_high": [({"fpg_last": 16.7}, {"fpg_last": 16.6})],
    # hypoglycaemia is an emergency criterion of the diabetes specification; a low-normal fasting glucose
    # in a non-diabetic hypertensive patient is not
    "fpg_emergency_low": [({"fpg_last": 3.9}, {"fpg_last": 4.0}),
                          ({"fpg_last": 3.9}, {"fpg_last": 3.9, "has_diabetes_t2": False})],
    "danger_symptoms": [({"fu_last_danger_symptoms": True}, {"fu_last_danger_symptoms": False}),
                        ({"fu_last_danger_symptoms": True}, {"fu_last_danger_symptoms": None})],
    "bp_uncontrolled_consecutive": [
        ({"fu_consecutive_uncontrolled_bp": 2, "bp_last_sbp": 145.0},
         {"fu_consecutive_uncontrolled_bp": 1, "bp_last_sbp": 145.0}),
        # an older patient at 145/85 is on target (< 150/90 from 65)
        ({"fu_consecutive_uncontrolled_bp": 2, "bp_last_sbp": 150.0, "age": 70.0},
         {"fu_consecutive_uncontrolled_bp": 2, "bp_last_sbp": 149.0, "age": 70.0}),
    ],
    "fpg_uncontrolled_consecutive": [
        ({"fu_consecutive_uncontrolled_fpg": 2, "fpg_last": 7.0},
         {"fu_consecutive_uncontrolled_fpg": 1, "fpg_last": 7.0}),
        ({"fu_consecutive_uncontrolled_fpg": 2, "fpg_last": 7.0},
         {"fu_consecutive_uncontrolled_fpg": 2, "fpg_last": 6.9}),
    ],
    "complication_new": [({"cx_new_90d": True}, {"cx_new_90d": False})],
    # established disease is very high risk whatever the BP (issue 15: it used to need BP >= 140/90)
    "cv_risk_very_high": [
        ({"cx_stroke": True, "cx_count": 1}, {"cx_stroke": False}),
        ({"cx_coronary": True, "cx_count": 1, "bp_last_sbp": 118.0}, {"bp_last_sbp": 118.0}),
        ({"egfr_last": 29.0}, {"egfr_last": 30.0}),
        # retinopathy counts as a clinical condition only with diabetes
        ({"cx_retinopathy": True}, {"cx_retinopathy": True, "has_diabetes_t2": False}),
    ],
    # own target: < 130/80 with diabetes (the base row is diabetic), < 150/90 from 65, else < 140/90
    "bp_uncontrolled": [
        ({"bp_last_sbp": 130.0}, {"bp_last_sbp": 129.0}),
        ({"bp_last_dbp": 80.0}, {"bp_last_dbp": 79.0}),
        ({"bp_last_sbp": 140.0, "has_diabetes_t2": False}, {"bp_last_sbp": 139.0, "has_diabetes_t2": False}),
        ({"bp_last_dbp": 90.0, "has_diabetes_t2": False}, {"bp_last_dbp": 89.0, "has_diabetes_t2": False}),
        ({"bp_last_sbp": 150.0, "age": 65.0, "has_diabetes_t2": False},
         {"bp_last_sbp": 149.0, "age": 65.0, "has_diabetes_t2": False}),
    ],
    "fpg_uncontrolled": [({"fpg_last": 7.0}, {"fpg_last": 6.9}),
                         ({"fpg_last": 8.0}, {"fpg_last": 8.0, "has_diabetes_t2": False})],
    "hba1c_above_target": [
        ({"hba1c_last": 7.0}, {"hba1c_last": 6.9}),
        ({"hba1c_last": 7.5, "hba1c_last_date": days_ago(365)},
         {"hba1c_last": 7.5, "hba1c_last_date": days_ago(366)}),
    ],
    "adverse_drug_reaction": [({"fu_last_adverse_reaction": True}, {"fu_last_adverse_reaction": False})],
    "cv_risk_high": [
        ({"bp_last_sbp": 145.0}, {"bp_last_sbp": 145.0, "has_diabetes_t2": False}),
        ({"bp_last_sbp": 145.0, "has_diabetes_t2": False, "uacr_last": 30.0},
         {"bp_last_sbp": 145.0, "has_diabetes_t2": False, "uacr_last": 29.9}),
        ({**THREE_RISK_FACTORS, "bmi_last": 28.0}, {**THREE_RISK_FACTORS, "bmi_last": 27.9}),
        # family history of premature cardiovascular disease is a risk factor (issue 15)
        ({**THREE_RISK_FACTORS, "family_history_ascvd": True},
         {**THREE_RISK_FACTORS, "family_history_ascvd": None}),
        # with diabetes, BP above the < 130/80 target is high risk
        ({"bp_last_sbp": 130.0}, {"bp_last_sbp": 129.0}),
    ],
    # eGFR < 60 counts on its own, at a controlled BP (it used to need BP >= 140/90)
    "kidney_function_reduced": [({"egfr_last": 59.0}, {"egfr_last": 60.0})],
    "recent_admission": [({"enc_inpatient_12m": 1}, {"enc_inpatient_12m": 0}),
                         ({"enc_emergency_12m": 1}, {"enc_emergency_12m": 0})],
    "chinapar_high": [({"chinapar_risk_10y": 0.10}, {"chinapar_risk_10y": 0.099})],
    "age_beyond_chinapar": [({"age": 75.0, "chinapar_risk_10y": None},
                             {"age": 74.9, "chinapar_risk_10y": None})],
    "complication_established": [({"cx_count": 1, "cx_neuropathy": True, "has_diabetes_t2": False},
                                  {"cx_count": 0, "has_diabetes_t2": False})],
    "followup_overdue": [
        ({"fu_days_since_last": 121, "fu_last_date": days_ago(121)},
         {"fu_days_since_last": 120, "fu_last_date": days_ago(120)}),
        ({"fu_days_since_last": None, "fu_last_date": None, "enrolled_on": days_ago(121)},
         {"fu_days_since_last": None, "fu_last_date": None, "enrolled_on": days_ago(120)}),
    ],
    "bp_not_measured": [
        ({"bp_days_since_last": 181, "bp_last_date": days_ago(181)},
         {"bp_days_since_last": 180, "bp_last_date": days_ago(180)}),
        ({"bp_last_sbp": None, "bp_last_dbp": None, "bp_last_date": None, "bp_days_since_last": None},
         {"bp_last_sbp": None, "bp_last_dbp": None, "bp_last_date": None, "bp_days_since_last": None,
          "has_hypertension": False}),
    ],
    "fpg_not_measured": [({"fpg_last_date": days_ago(181)}, {"fpg_last_date": days_ago(180)}),
                         ({"fpg_last_date": None, "fpg_last": None},
                          {"fpg_last_date": None, "fpg_last": None, "has_diabetes_t2": False})],
    "poor_adherence": [
        ({"fu_last_adherence": "none"}, {"fu_last_adherence": "intermittent"}),
        ({"pdc_antihypertensive_12m": 0.49}, {"pdc_antihypertensive_12m": 0.5}),
        ({"pdc_antidiabetic_12m": 0.2}, {"pdc_antidiabetic_12m": 0.2, "has_diabetes_t2": False}),
        # no prescription records is not poor adherence (a county without a pharmacy feed)
        ({"pdc_antihypertensive_12m": 0.2},
         {"pdc_antihypertensive_12m": 0.0, "antihypertensive_dispensed_12m": False}),
        ({"pdc_antidiabetic_12m": 0.2}, {"pdc_antidiabetic_12m": 0.0}),
    ],
}

CASE_PARAMS = [pytest.param(rule_id, fires, miss, id=f"{rule_id}-{n}")
               for rule_id, cases in CASES.items() for n, (fires, miss) in enumerate(cases)]


@pytest.fixture(scope="module")
def fitted() -> RuleTierClassifier:
    return RuleTierClassifier().fit(frame(base_row()))


def fired_ids(classifier: RuleTierClassifier, *rows: dict[str, Any]) -> list[list[str]]:
    return classifier.explain(frame(*rows))["fired_rule_ids"].tolist()


def test_the_base_case_is_green_with_the_default_reason(fitted):
    explained = fitted.explain(frame(base_row()))
    assert explained.loc[0, "tier"] == "green"
    assert explained.loc[0, "fired_rule_ids"] == ["low_or_medium_risk"]
    assert explained.loc[0, "reasons_en"] == [
        "Low or medium risk: no high-risk finding, routine quarterly follow-up"]


def test_every_default_rule_has_a_fire_and_near_miss_case():
    assert {rule.id for rule in load_rule_set().rules} == set(CASES)


@pytest.mark.parametrize(("rule_id", "fires", "miss"), CASE_PARAMS)
def test_rule_fires_on_case_and_not_on_near_miss(fitted, rule_id, fires, miss):
    on_case, on_miss = fired_ids(fitted, base_row(**fires), base_row(**miss))
    assert rule_id in on_case
    assert rule_id not in on_miss
    predicted = fitted.predict(frame(base_row(**fires)))[0]
    assert TIER_RANK[predicted] >= TIER_RANK[load_rule_set().rule(rule_id).tier]


def test_colour_is_the_risk_level_and_the_first_reason_explains_it(fitted):
    overdue = {"fu_days_since_last": 200, "fu_last_date": days_ago(200)}
    rows = [base_row(**overdue), base_row(**overdue, fpg_last=17.0), base_row(bp_last_sbp=150.0),
            base_row(fu_consecutive_uncontrolled_bp=2, bp_last_sbp=145.0, has_diabetes_t2=False)]
    explained = fitted.explain(frame(*rows))
    # overdue and a referral criterion set the due date and the order, not the colour
    assert explained["tier"].tolist() == ["green", "red", "yellow", "green"]
    assert explained.loc[0, "fired_rule_ids"] == ["low_or_medium_risk", "followup_overdue"]
    assert explained.loc[1, "fired_rule_ids"][0] == "fpg_emergency_high"
    assert "followup_overdue" in explained.loc[1, "fired_rule_ids"]
    # nested levels: the emergency supersedes the first-uncontrolled review; very high supersedes high
    assert "fpg_uncontrolled" not in explained.loc[1, "fired_rule_ids"]
    assert explained.loc[2, "fired_rule_ids"][:2] == ["cv_risk_high", "bp_uncontrolled"]
    assert explained.loc[3, "fired_rule_ids"] == ["low_or_medium_risk", "bp_uncontrolled_consecutive"]
    rule_set = load_rule_set()
    for tier, ids in zip(explained["tier"], explained["fired_rule_ids"], strict=True):
        assert rule_set.rule(ids[0]).tier == tier  # the first reason names the colour
        assert all(TIER_RANK[rule_set.rule(i).tier] <= TIER_RANK[tier] for i in ids)


def test_nested_risk_levels_show_only_the_highest(fitted):
    row = base_row(cx_stroke=True, cx_count=1, bp_last_sbp=150.0, chinapar_risk_10y=0.2, egfr_last=50.0)
    ids = fitted.explain(frame(row)).loc[0, "fired_rule_ids"]
    assert ids[0] == "cv_risk_very_high"
    hidden = {"cv_risk_high", "chinapar_high", "kidney_function_reduced", "complication_established"}
    assert not hidden & set(ids)


def test_null_inputs_do_not_fire():
    rule_set = load_rule_set()
    row = base_row(bp_last_sbp=None, bp_last_dbp=None, fpg_last=None, fu_last_danger_symptoms=None,
                   cx_new_90d=None, cx_count=None, chinapar_risk_10y=None, has_hypertension=False)
    result = evaluate(rule_set, frame(row))
    fired = {rule.id for rule, hit in zip(rule_set.rules, result.fired[0], strict=True) if hit}
    assert fired == set()


def test_decision_function_orders_tiers_and_stays_within_tier(fitted):
    rows = [base_row(), base_row(bp_last_sbp=145.0),
            base_row(bp_last_sbp=145.0, fu_last_adverse_reaction=True),
            base_row(bp_last_sbp=185.0), base_row(bp_last_sbp=185.0, fpg_last=20.0)]
    score = fitted.decision_function(frame(*rows))
    assert np.all(np.diff(score) > 0)
    assert np.array_equal(np.floor(score), [0, 1, 1, 2, 2])


def test_next_due_from_the_colour_interval_and_the_urgent_rules():
    rows = [
        base_row(),  # green, seen 30 days ago -> due in 60 days
        base_row(bp_last_sbp=185.0),  # emergency -> due now
        base_row(bp_last_sbp=145.0),  # yellow, first uncontrolled visit -> review 14 days after it
        base_row(fu_last_date=None, fu_days_since_last=None, enrolled_on=days_ago(10)),  # never seen
        base_row(fu_last_adverse_reaction=True),  # adverse reaction -> review within 14 days, not 30
        base_row(cx_stroke=True, cx_count=1),  # red, controlled -> the red interval, 30 days
    ]
    tiers = assign_rule_tiers(frame(*rows))
    assert tiers["tier_rules"].tolist() == ["green", "red", "yellow", "green", "green", "red"]
    due = [d for d in tiers["next_due_on"]]
    assert due == [days_ago(30 - 90), AS_OF, days_ago(30 - 14), AS_OF, days_ago(30 - 14), days_ago(0)]
    assert tiers["days_overdue"].tolist() == [0, 0, 16, 0, 16, 0]
    assert tiers["urgency"].tolist() == [0, 3, 1, 0, 1, 0]
    assert set(tiers.columns) == {"person_id", "as_of", "tier_rules", "rule_score", "reasons", "next_due_on",
                                  "days_overdue", "urgency", "urgency_due_days", "rule_set_version",
                                  "rule_set_fingerprint"}
    reasons = json.loads(tiers.loc[1, "reasons"])
    assert reasons[0] == {"id": "bp_emergency", "tier": "red",
                          "zh": load_rule_set().rule("bp_emergency").reason_zh,
                          "en": "BP at or above 180/110 mmHg: act now, emergency referral"}
    assert (tiers["rule_set_version"] == "2.1.0").all()


def test_dates_may_arrive_as_datetime64():
    features = frame(base_row(bp_last_sbp=145.0))
    dates = ("as_of", "fu_last_date", "bp_last_date", "fpg_last_date", "hba1c_last_date", "enrolled_on")
    for column in dates:
        features[column] = pd.to_datetime(features[column])
    tiers = assign_rule_tiers(features)
    assert tiers.loc[0, "tier_rules"] == "yellow"
    assert tiers.loc[0, "days_overdue"] == 16


def test_county_copy_with_a_changed_threshold_changes_the_outcome(tmp_path):
    data = default_rule_data()
    data["name"], data["version"] = "suixi", "suixi-1"
    data["thresholds"]["sbp_emergency"]["value"] = 170
    data["tiers"]["red"]["interval_days"] = 7
    county = write_rule_file(tmp_path, data)
    features = frame(base_row(bp_last_sbp=175.0, cx_stroke=True, cx_count=1, has_diabetes_t2=False))
    controlled = frame(base_row(cx_stroke=True, cx_count=1))
    default = assign_rule_tiers(features)
    copy = assign_rule_tiers(features, rules=county)
    assert default.loc[0, "urgency"] == 1  # red by the stroke; 175 is a review, not an emergency
    assert copy.loc[0, "urgency"] == 3 and copy.loc[0, "next_due_on"] == AS_OF
    assert assign_rule_tiers(controlled, rules=county).loc[0, "next_due_on"] == days_ago(30 - 7)
    assert copy.loc[0, "rule_set_version"] == "suixi-1"
    assert copy.loc[0, "rule_set_fingerprint"] != default.loc[0, "rule_set_fingerprint"]
    assert RuleTierClassifier(rules=county).fit(features).predict(features)[0] == "red"
    assert default.loc[0, "tier_rules"] == copy.loc[0, "tier_rules"] == "red"


@pytest.mark.slow
def test_rows_stay_aligned_on_a_large_shuffled_frame():
    rng = np.random.default_rng(20241125)
    n = 60_000
    features = frame(base_row()).iloc[np.zeros(n, dtype=int)].reset_index(drop=True)
    features["person_id"] = [f"P{i:06d}" for i in range(n)]
    features["bp_last_sbp"] = rng.uniform(100, 200, n).round()
    features["fpg_last"] = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(2, 20, n).round(1))
    result = evaluate(load_rule_set(), features)
    ids = [rule.id for rule in load_rule_set().rules]
    sbp = features["bp_last_sbp"].to_numpy()
    assert np.array_equal(result.fired[:, ids.index("bp_emergency")], sbp >= 180)
    fpg = features["fpg_last"].to_numpy()
    assert np.array_equal(result.fired[:, ids.index("fpg_emergency_low")], np.nan_to_num(fpg, nan=99) <= 3.9)
    tiers = assign_rule_tiers(features)
    assert tiers["person_id"].tolist() == features["person_id"].tolist()


def test_missing_feature_column_is_a_clear_user_error(fitted):
    features = frame(base_row()).drop(columns=["fpg_last"])
    with pytest.raises(RiskUserError, match="missing column.*fpg_last"):
        fitted.predict(features)


def test_every_condition_transpiles_to_spark():
    rule_set = load_rule_set()
    spark = rule_set.to_dialect("spark")
    assert set(spark) == {d.name for d in rule_set.derived} | {r.id for r in rule_set.rules}
    for name, text in spark.items():
        tree = sqlglot.parse_one(text, read="spark")
        assert tree is not None, name
    assert "DATEDIFF" in spark["followup_overdue"].upper()


# ---- scikit-learn surface ----

def test_clone_and_params(tmp_path):
    county = write_rule_file(tmp_path, default_rule_data())
    estimator = RuleTierClassifier(rules=county)
    assert estimator.get_params() == {"rules": county}
    copy = clone(estimator)
    assert copy.get_params() == {"rules": county} and copy is not estimator
    copy.set_params(rules=None)
    assert copy.rules is None and estimator.rules == county


def test_unfitted_estimator_refuses_to_predict():
    with pytest.raises(NotFittedError):
        RuleTierClassifier().predict(frame(base_row()))


def test_fit_sets_sklearn_attributes(fitted):
    assert fitted.classes_.tolist() == ["green", "yellow", "red"]
    assert "bp_last_sbp" in fitted.feature_names_in_
    assert fitted.intervals_ == {"green": 90, "yellow": 60, "red": 30}
    assert fitted.rule_set_version_ == "2.1.0"
    assert not hasattr(fitted, "predict_proba")


def test_works_inside_a_pipeline_and_evaluation_harness():
    rows = [base_row(), base_row(bp_last_sbp=150.0), base_row(bp_last_sbp=185.0), base_row(fpg_last=3.0)] * 5
    features = frame(*rows)
    outcome = np.array([0, 0, 1, 1] * 5)
    pipeline = Pipeline([("identity", FunctionTransformer(lambda df: df)), ("rules", RuleTierClassifier())])
    pipeline.fit(features, outcome)
    assert pipeline.predict(features).tolist()[:4] == ["green", "yellow", "red", "red"]
    # the shared evaluation harness ranks with decision_function (no predict_proba): fit, score, AUROC
    scores = np.zeros(len(features))
    for train, test in KFold(n_splits=2, shuffle=True, random_state=7).split(features):
        fold = clone(pipeline).fit(features.iloc[train], outcome[train])
        scores[test] = fold.decision_function(features.iloc[test])
    assert roc_auc_score(outcome, scores) == 1.0
