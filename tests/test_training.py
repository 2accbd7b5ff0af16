"""Training set (temporal split, no leakage), calibrated estimators, explanations, model tiers, combined
policy, exported-model feature check."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from risk.errors import RiskUserError
from risk.models.estimators import CalibratedRiskModel, calibrate
from risk.models.explanations import describe, top_reasons
from risk.models.export import (
    ModelFeatureMismatch,
    approved_models_dir,
    load_exported_model,
    write_exported_model,
)
from risk.models.features import FeatureSpec
from risk.models.policy import ModelPolicy, default_model_policy
from risk.models.training_set import build_training_set, latest_complete_as_of, plan_snapshots
from risk.tiers.combine import combine_tiers
from risk.tiers.model import assign_probability_tiers, score_model_tiers
from risk.tiers.rule_set import TIER_RANK, TIERS

TEST_AS_OF = date(2023, 12, 31)
DATA_END = date(2024, 12, 31)


@pytest.fixture(scope="module")
def validated_county(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from risk.validate import validate_folder

    out = tmp_path_factory.mktemp("train_county") / "validated"
    validate_folder(small_county, out, as_of=date(2025, 1, 1))
    return out / "canonical"


def policy_with(**sections: dict) -> ModelPolicy:
    return default_model_policy().updated(sections)


# --- snapshots and leakage -------------------------------------------------------------------------------


def test_training_windows_end_before_the_test_snapshot() -> None:
    plan = plan_snapshots(TEST_AS_OF, n_train=4, every_months=3, horizon_days=365)
    assert plan.train_as_of == (date(2022, 3, 31), date(2022, 6, 30), date(2022, 9, 30), date(2022, 12, 31))
    assert all(d + timedelta(days=365) <= TEST_AS_OF for d in plan.train_as_of)
    assert latest_complete_as_of(DATA_END, 365) == TEST_AS_OF
    plan.check(DATA_END)
    with pytest.raises(RiskUserError, match="ends after the data ends"):
        plan_snapshots(date(2024, 3, 31), 2, 3, 365).check(DATA_END)


def _rewrite_future(canonical: Path, out: Path, cutoff: date) -> None:
    """Copy the canonical tables, replacing everything after `cutoff` by a different future: all later events
    deleted, then every person admitted for a stroke and dead shortly after the cutoff."""
    out.mkdir(parents=True)
    event_dates = {
        "vitals": "measured_at",
        "labs": "measured_at",
        "follow_ups": "followed_on",
        "encounters": "admitted_on",
        "prescriptions": "dispensed_on",
        "conditions": "enrolled_on",
    }
    con = duckdb.connect()
    day = f"DATE '{cutoff.isoformat()}'"
    for path in canonical.glob("*.parquet"):
        table = path.stem
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')")
        if table in event_dates:
            con.execute(f"DELETE FROM t WHERE CAST({event_dates[table]} AS DATE) > {day}")
        if table == "encounters":
            con.execute(f"""INSERT INTO t BY NAME SELECT 'future-' || person_id AS encounter_id, person_id,
                'inpatient' AS setting, 'county' AS facility_level, {day} + 30 AS admitted_on,
                {day} + 35 AS discharged_on, 'I63.9' AS primary_dx, NULL AS secondary_dx, 900.0 AS total_cost,
                700.0 AS fund_paid, 0 AS source_row FROM read_parquet('{canonical / "persons.parquet"}')""")
        if table == "persons":
            con.execute(
                f"UPDATE t SET death_date = {day} + 40 WHERE death_date IS NULL OR death_date > {day}"
            )
        con.execute(f"COPY t TO '{out / path.name}' (FORMAT parquet)")
        con.execute("DROP TABLE t")


@pytest.mark.slow
def test_no_future_leaks_into_training(validated_county: Path, tmp_path: Path) -> None:
    """Rewriting everything after the test as-of date leaves the training rows unchanged."""
    plan = plan_snapshots(TEST_AS_OF, n_train=2, every_months=3, horizon_days=365)
    original = build_training_set(validated_county, plan, data_end=DATA_END)
    _rewrite_future(validated_county, tmp_path / "rewritten", TEST_AS_OF)
    rewritten = build_training_set(tmp_path / "rewritten", plan, data_end=DATA_END)

    assert len(original.train) > 500 and original.train["outcome"].sum() > 10
    pd.testing.assert_frame_equal(
        original.train.reset_index(drop=True), rewritten.train.reset_index(drop=True)
    )
    # The rewrite did change the future: every test-snapshot person now has an outcome.
    assert rewritten.test["outcome"].all() and not original.test["outcome"].all()


# --- estimators -------------------------------------------------------------------------------------------


def _toy(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "bp_last_sbp": rng.normal(145, 18, n),
            "cx_stroke": rng.random(n) < 0.15,
            "sex": rng.choice(["M", "F"], n),
            "person_id": [f"p{i}" for i in range(n)],
        }
    )
    logit = -3.0 + (X["bp_last_sbp"] - 145) / 12 + 1.2 * X["cx_stroke"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X.loc[rng.random(n) < 0.2, "bp_last_sbp"] = np.nan  # missing values must not drop patients
    X.loc[rng.random(n) < 0.1, "sex"] = None
    return X, y


SPEC = FeatureSpec(numeric=("bp_last_sbp",), categorical=("sex",), boolean=("cx_stroke",))


def test_calibration_improves_brier_on_a_miscalibrated_model() -> None:
    """class_weight='balanced' inflates every probability; calibrating on a separate slice repairs it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _toy(12_000, seed=1)
    numbers = X[["bp_last_sbp"]].fillna(145).assign(stroke=X["cx_stroke"].astype(float))
    fit, cal, test = slice(0, 6000), slice(6000, 9000), slice(9000, 12000)
    skewed = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
    skewed.fit(numbers[fit], y[fit])
    before = brier_score_loss(y[test], skewed.predict_proba(numbers[test])[:, 1])
    for method in ("sigmoid", "isotonic"):
        calibrated = calibrate(skewed, numbers[cal], y[cal], method)
        after = brier_score_loss(y[test], calibrated.predict_proba(numbers[test])[:, 1])
        assert after < 0.8 * before, method
        assert abs(calibrated.predict_proba(numbers[test])[:, 1].mean() - y[test].mean()) < 0.02


@pytest.mark.parametrize("kind", ["logistic_regression", "gradient_boosting"])
def test_models_score_every_patient_despite_missing_values(kind: str) -> None:
    X, y = _toy(4000, seed=2)
    params = {"max_iter": 40} if kind == "gradient_boosting" else {}
    model = CalibratedRiskModel(kind, SPEC, params, seed=3).fit(X, y)
    probability = model.predict_proba(X)[:, 1]
    assert probability.shape == (len(X),) and np.isfinite(probability).all()
    assert probability.min() > 0 and probability.max() < 1
    assert model.n_fit_rows_ + model.n_calibration_rows_ == len(X)


def test_explanations_name_the_feature_that_drives_the_risk() -> None:
    X, y = _toy(4000, seed=4)
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=5).fit(X, y)
    patient = pd.DataFrame({"bp_last_sbp": [190.0], "cx_stroke": [False], "sex": ["F"], "person_id": ["x"]})
    reasons = top_reasons(model, patient, top_n=3)[0]
    assert reasons[0]["feature"] == "bp_last_sbp"
    # one patient: no same-age-sex group, so the comparison is with the model's typical patient
    typical = f"{model.reference_['bp_last_sbp']:.0f}"
    assert reasons[0]["en"] == f"last systolic BP 190 mmHg (typical patient: {typical} mmHg)"
    assert reasons[0]["zh"] == f"最近一次收缩压190 mmHg（一般患者通常{typical} mmHg）"
    assert all(r["log_odds"] > 0 for r in reasons)
    assert describe("cx_stroke", True) == ("既往脑卒中", "history of stroke")
    assert describe("cx_stroke", False) is None  # no stroke is no reason
    assert describe("hba1c_last", float("nan")) is None  # a missing HbA1c is not the point
    assert describe("bp_last_sbp", float("nan")) == ("没有血压记录", "no blood pressure on record")
    assert describe("bp_days_since_last", 213.0) == ("7个月未测血压", "no blood pressure for 7 months")
    assert describe("sex", "M") is None and describe("age", 70.0) is None


def test_explanations_for_many_patients_describe_each_patients_own_value() -> None:
    """Phrases are built once per distinct value and mapped back: every row must get its own value's."""
    from risk.models.explanations import MIN_CONTRIBUTION, contributions, typical_reference
    from risk.models.features import model_frame

    X, y = _toy(3000, seed=6)
    X["cx_stroke"] = X["cx_stroke"].astype(object).where(np.random.default_rng(1).random(len(X)) > 0.1, None)
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=7).fit(X, y)
    reasons = top_reasons(model, X, top_n=3)
    values = model_frame(X, SPEC)
    reference, grouped = typical_reference(model, X)
    weights = contributions(model, X, reference)
    for i in range(len(X)):
        sayable = {
            f: w
            for f, w in weights.iloc[i].items()
            if describe(f, values.iloc[i][f], reference.iloc[i][f]) is not None
        }
        expected = [f for f, w in sorted(sayable.items(), key=lambda kv: -kv[1])[:3] if w >= MIN_CONTRIBUTION]
        got = reasons[i]
        assert [r["feature"] for r in got] == expected
        for reason in got:
            f = reason["feature"]
            col = list(SPEC.columns).index(f)
            zh, en = describe(f, values.iloc[i][f], reference.iloc[i][f], bool(grouped[i, col]))
            assert (reason["zh"], reason["en"]) == (zh, en)
    texts = [r["en"] for row in reasons for r in row]
    assert any(t.startswith("no blood pressure on record") for t in texts)
    assert not any("not recorded" in t or "BP: " in t or "Sex" in t for t in texts)


# --- tiers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "red", "yellow"), [(1000, 0.05, 0.20), (997, 0.1, 0.3), (20, 0.05, 0.0)])
def test_capacity_tiers_give_the_configured_shares(n: int, red: float, yellow: float) -> None:
    policy = policy_with(
        tiering={"method": "capacity", "capacity": {"red_share": red, "yellow_share": yellow}}
    )
    probability = np.random.default_rng(n).random(n)
    probability[:50] = 0.5  # ties must not change the share
    tiers = assign_probability_tiers(probability, policy)
    n_red, n_yellow = (tiers == "red").sum(), (tiers == "yellow").sum()
    assert n_red == int(np.ceil(red * n))
    assert n_red + n_yellow == int(np.ceil((red + yellow) * n))
    assert probability[tiers == "red"].min() >= probability[tiers != "red"].max()


def test_capacity_within_teams_and_probability_cutoffs() -> None:
    policy = policy_with(tiering={"method": "capacity", "capacity": {"red_share": 0.1, "yellow_share": 0.1}})
    teams = pd.Series(["a"] * 100 + ["b"] * 50)
    probability = np.concatenate([np.linspace(0.5, 0.9, 100), np.linspace(0.0, 0.1, 50)])
    tiers = assign_probability_tiers(probability, policy, teams)
    assert (tiers[:100] == "red").sum() == 10 and (tiers[100:] == "red").sum() == 5
    cutoffs = policy_with(
        tiering={"method": "probability", "probability": {"red_at_least": 0.2, "yellow_at_least": 0.08}}
    )
    assert list(assign_probability_tiers([0.25, 0.2, 0.1, 0.0799], cutoffs)) == [
        "red",
        "red",
        "yellow",
        "green",
    ]


@pytest.mark.parametrize("max_raise", [0, 1, 2])
def test_combined_tier_never_lowers_the_rule_tier(max_raise: int) -> None:
    pairs = [(r, m) for r in TIERS for m in TIERS]
    rules = pd.DataFrame(
        {"person_id": [f"p{i}" for i in range(len(pairs))], "tier_rules": [r for r, _ in pairs]}
    )
    model = pd.DataFrame({"person_id": rules["person_id"], "tier_model": [m for _, m in pairs]})
    combined = combine_tiers(rules, model, policy_with(combine={"max_raise_levels": max_raise}))
    for (rule, model_tier), tier, reason in zip(
        pairs, combined["tier"], combined["combine_reason"], strict=True
    ):
        assert TIER_RANK[tier] >= TIER_RANK[rule]
        assert TIER_RANK[tier] == min(
            max(TIER_RANK[rule], TIER_RANK[model_tier]), TIER_RANK[rule] + max_raise
        )
        if TIER_RANK[model_tier] < TIER_RANK[rule]:
            assert reason == f"rule_kept: {rule} (model {model_tier})"  # never silent
        elif model_tier == rule:
            assert reason == "agree"
    no_model = combine_tiers(rules, None, default_model_policy())
    assert (no_model["tier"] == rules["tier_rules"]).all() and (
        no_model["combine_reason"] == "rule_only"
    ).all()


# --- export and the nightly job's checks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = _toy(3000, seed=6)
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=7).fit(X, y)
    models_dir = tmp_path_factory.mktemp("models")
    metadata = {"version": "lr-test", "feature_columns": SPEC.columns, "feature_set_version": "2026.11.1"}
    write_exported_model(model, metadata, "# card\n", models_dir)
    return models_dir


def test_exported_model_scores_with_tiers_and_reasons(exported: Path) -> None:
    model = load_exported_model(exported)
    assert model.version == "lr-test" and (exported / "CURRENT").read_text().strip() == "lr-test"
    features, _ = _toy(400, seed=8)
    policy = policy_with(tiering={"method": "capacity", "capacity": {"red_share": 0.05, "yellow_share": 0.2}})
    model.metadata["feature_set_version"] = "unknown"  # toy features are not the pipeline's
    scored = score_model_tiers(model, features, policy)
    assert list(scored.columns) == ["person_id", "model_probability", "tier_model", "model_reasons"]
    assert (scored["tier_model"] == "red").sum() == 20
    reasons = json.loads(scored.sort_values("model_probability")["model_reasons"].iloc[-1])
    assert reasons and {"feature", "zh", "en", "log_odds"} <= set(reasons[0])


def test_model_whose_features_do_not_match_is_refused(exported: Path) -> None:
    model = load_exported_model(exported)
    with pytest.raises(ModelFeatureMismatch, match=r"does not produce 1 feature\(s\) it needs: cx_stroke"):
        model.check_features(["person_id", "bp_last_sbp", "sex"])
    with pytest.raises(
        ModelFeatureMismatch, match="feature-set version 2026.11.1, the pipeline is at 2027.1"
    ):
        model.check_features(SPEC.columns, "2027.1")
    model.check_features([*SPEC.columns, "extra_column"], "2026.11.1")  # extra pipeline columns are fine
    with pytest.raises(RiskUserError, match="no exported model"):
        load_exported_model(exported / "nowhere")


def test_linear_explanations_equal_the_one_at_a_time_definition():
    """The one-pass linear contributions are the documented one-at-a-time contributions, exactly."""

    import numpy as np
    import pandas as pd

    from risk.models.explanations import linear_contributions, one_at_a_time_contributions
    from risk.models.features import model_frame
    from risk.tiers.model import load_exported_model

    model = load_exported_model(approved_models_dir()).estimator
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({c: model.reference_[c] for c in model.spec.columns}, index=range(200))
    frame = model_frame(frame, model.spec)
    for column in ("age", "bp_last_sbp", "fpg_last", "fu_days_since_last"):
        frame[column] = frame[column].astype(float) * rng.uniform(0.5, 1.5, len(frame))
    frame.loc[::7, "fpg_last"] = np.nan
    # a per-row reference (the typical patient of each row's age and sex group)
    reference = frame.copy()
    for column in ("age", "bp_last_sbp", "fpg_last"):
        reference[column] = reference[column] * 0 + rng.uniform(80, 160, len(frame))
    fast = linear_contributions(model, frame, reference)
    assert fast is not None
    np.testing.assert_allclose(fast, one_at_a_time_contributions(model, frame, reference), atol=1e-9)
