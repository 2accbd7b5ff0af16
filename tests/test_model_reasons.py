"""Model reasons in plain clinical language (issue 15 item 5): compared with a typical patient of the same
age and sex, Chinese and English written for people, missing data a reason only where it is the point, and
no raw code (M, F, none, high, 无记录, feature names) ever reaching a person."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from risk.models.estimators import CalibratedRiskModel
from risk.models.explanations import describe, phrase_book, top_reasons
from risk.models.features import FeatureSpec, catalogue

SPEC = FeatureSpec(
    numeric=("age", "bp_last_sbp", "hba1c_last"),
    categorical=("sex", "fu_last_adherence", "chinapar_category"),
    boolean=("fu_last_smoker",),
)


def _county(n: int = 4000, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(40, 85, n)
    X = pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(n)],
            "age": age,
            "sex": rng.choice(["M", "F"], n),
            # older patients have higher BP: a 170 at 80 is less unusual than a 170 at 45
            "bp_last_sbp": 110 + 0.6 * age + rng.normal(0, 12, n),
            "hba1c_last": np.where(rng.random(n) < 0.7, np.nan, rng.normal(7, 1, n)),
            "fu_last_adherence": rng.choice(["regular", "intermittent", "none"], n, p=[0.7, 0.2, 0.1]),
            "chinapar_category": rng.choice(["low", "medium", "high", None], n),
            "fu_last_smoker": rng.random(n) < 0.3,
        }
    )
    logit = -4 + 0.04 * (age - 60) + (X["bp_last_sbp"] - 145) / 15 + 0.8 * (X["fu_last_adherence"] == "none")
    logit += 0.5 * X["fu_last_smoker"] + 0.7 * (X["chinapar_category"] == "high")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_every_model_feature_has_plain_words():
    features = phrase_book()["features"]
    known = set(catalogue())
    assert set(features) <= known
    from risk.models.policy import default_model_policy

    excluded = set(default_model_policy().features.exclude)
    model_features = {
        n for n, e in catalogue().items() if n not in excluded and e["type"] not in ("date",)
    } - {"person_id", "as_of", "township_id", "village_id", "unit_id", "team_id"}
    missing = sorted(model_features - set(features))
    assert not missing, f"reason_phrases.yaml lacks {missing}"


def test_reasons_compare_with_the_same_age_and_sex_and_never_show_codes():
    X, y = _county()
    Xc, yc = _county(2000, seed=4)
    # an explicit calibration slice: every row of X is a training row, the population of the typical patient
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=1).fit(X, y, Xc, yc)
    young = X["age"].between(40, 49.99) & (X["sex"] == "M")
    old = X["age"].between(80, 89.99) & (X["sex"] == "M")
    probe = X.copy()
    # the same BP, 170, in a man in his forties and one in his eighties (10-year bands: age // 10)
    i, j = np.flatnonzero(young)[0], np.flatnonzero(old)[0]
    probe.loc[i, ["bp_last_sbp", "fu_last_adherence", "fu_last_smoker"]] = [170.0, "regular", False]
    probe.loc[j, ["bp_last_sbp", "fu_last_adherence", "fu_last_smoker"]] = [170.0, "regular", False]
    reasons = top_reasons(model, probe, top_n=3)
    bp_young = next(r for r in reasons[i] if r["feature"] == "bp_last_sbp")
    bp_old = next(r for r in reasons[j] if r["feature"] == "bp_last_sbp")
    typical_young = X.loc[young, "bp_last_sbp"].median()  # the training group's, stored with the model
    typical_old = X.loc[old, "bp_last_sbp"].median()
    assert f"typical for the same age and sex: {typical_young:.0f} mmHg" in bp_young["en"]
    assert f"同龄同性别患者通常{typical_old:.0f} mmHg" in bp_old["zh"]
    assert bp_young["log_odds"] > bp_old["log_odds"]  # further from what is usual in his forties
    texts = [(r["zh"], r["en"]) for row in reasons for r in row]
    assert texts
    for zh, en in texts:
        for text in (zh, en):
            assert not re.search(r"\b(M|F|none|regular|intermittent|nan|None)\b", text), text
            assert text not in ("high", "medium", "low", "M", "F")
            assert "无记录" not in text and "not recorded" not in text and "_" not in text
            assert "性别：" not in text and "年龄" not in text and "：" not in text  # no "label: value"
    features = {r["feature"] for row in reasons for r in row}
    assert "sex" not in features and "age" not in features
    assert "hba1c_last" not in {
        r["feature"] for row, x in zip(reasons, X["hba1c_last"], strict=True) for r in row if np.isnan(x)
    }
    assert any(en == "not taking medication at the last visit" for _, en in texts)
    assert any(zh == "吸烟" for zh, _ in texts)


def test_a_value_on_the_good_side_is_never_a_reason():
    assert describe("egfr_last", 95.0, typical=80.0) is None  # better kidney function than typical
    assert describe("egfr_last", 42.0, typical=80.0)[1] == (
        "kidney function (eGFR) 42 mL/min/1.73m2 (typical for the same age and sex: 80 mL/min/1.73m2)"
    )
    assert describe("fu_count_12m", 6.0, typical=4.0) is None
    assert describe("fu_consecutive_uncontrolled_bp", 1.0, typical=0.0) is None  # one visit is no pattern
    assert describe("fu_last_adherence", "regular") is None
    assert describe("chinapar_category", "high")[0].startswith("10年心脑血管病风险高")


def _reasons_by_person(model: CalibratedRiskModel, frame: pd.DataFrame) -> dict[str, list[dict]]:
    return dict(zip(frame["person_id"], top_reasons(model, frame, top_n=3), strict=True))


def test_a_patients_reasons_do_not_depend_on_who_else_is_scored():
    """The typical patient is a property of the model (its training rows), not of the scored batch: the
    Spark engine scores per Arrow batch and must give every patient the same reasons as DuckDB."""
    X, y = _county()
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=1).fit(X, y)
    scored, _ = _county(3000, seed=9)
    scored["person_id"] = [f"s{i}" for i in range(len(scored))]
    # a batch whose make-up differs from the training county: only old men with very high BP
    odd = scored[(scored["sex"] == "M") & (scored["age"] >= 70)].copy()
    odd["bp_last_sbp"] += 40
    whole = _reasons_by_person(model, scored)
    for part in (scored.iloc[:40], scored.iloc[1500:1700], scored.sample(frac=0.5, random_state=2)):
        alone = _reasons_by_person(model, part)
        assert alone == {p: whole[p] for p in part["person_id"]}
    mixed = pd.concat([scored.iloc[:300], odd.assign(person_id="odd" + odd["person_id"])], ignore_index=True)
    assert {p: r for p, r in _reasons_by_person(model, mixed).items() if p.startswith("s")} == {
        p: whole[p] for p in scored["person_id"].iloc[:300]
    }
    one = scored.iloc[[7]]
    assert _reasons_by_person(model, one) == {one["person_id"].iloc[0]: whole[one["person_id"].iloc[0]]}
    # and the comparison is still within age and sex: the stored table has a value per group
    assert any("typical for the same age and sex" in r["en"] for row in whole.values() for r in row)


def test_a_model_exported_before_the_group_table_compares_with_its_overall_reference():
    X, y = _county()
    model = CalibratedRiskModel("logistic_regression", SPEC, {}, seed=1).fit(X, y)
    del model.group_reference_  # what an older model.joblib unpickles to
    probe = X.iloc[:200].copy()
    probe["bp_last_sbp"] = 175.0
    reasons = top_reasons(model, probe, top_n=3)
    typical = f"{model.reference_['bp_last_sbp']:.0f}"
    bp = [r for row in reasons for r in row if r["feature"] == "bp_last_sbp"]
    assert bp and all(r["en"] == f"last systolic BP 175 mmHg (typical patient: {typical} mmHg)" for r in bp)
    assert reasons == top_reasons(model, pd.concat([probe, X.iloc[200:1200]]), top_n=3)[:200]


def test_the_group_table_keeps_only_groups_with_enough_training_values():
    from risk.models.estimators import group_reference_values

    X, _ = _county(4000)
    X.loc[(X["sex"] == "F") & (X["age"] >= 80), "hba1c_last"] = np.nan  # no HbA1c in that group at all
    table = group_reference_values(X, SPEC, min_group=30)
    assert "hba1c_last" not in table["F|8"] and "bp_last_sbp" in table["F|8"]
    men_in_fifties = X[(X["sex"] == "M") & (X["age"] // 10 == 5)]
    assert table["M|5"]["bp_last_sbp"] == men_in_fifties["bp_last_sbp"].median()
    assert table["M|5"]["fu_last_adherence"] == men_in_fifties["fu_last_adherence"].mode().iloc[0]
    assert all(isinstance(v, (float, str)) for group in table.values() for v in group.values())


def test_the_json_reasons_are_the_reasons_character_for_character():
    """top_reasons_json (the tier stage's fast path, issue 19) writes exactly what json.dumps writes for
    top_reasons, for both model families, with missing values, rows without a reason and non-ASCII text."""
    from risk.models.explanations import reasons_json, top_reasons_json

    X, y = _county(n=1500, seed=5)
    X.loc[:40, "bp_last_sbp"] = np.nan  # missing: a reason only where the phrase book says so
    for family in ("logistic_regression", "gradient_boosting"):
        model = CalibratedRiskModel(family, SPEC, {}, seed=2).fit(X, y)
        for top_n in (1, 3):
            expected = reasons_json(top_reasons(model, X, top_n=top_n))
            assert top_reasons_json(model, X, top_n=top_n) == expected
            assert "[]" in expected and any(len(text) > 2 for text in expected)
    assert top_reasons_json(model, X.iloc[:0]) == []


def test_scoring_from_the_shared_inputs_is_predict_proba_for_both_families():
    """The tier stage's probability (issue 19: preprocessed once with the explanations) is the model's
    predict_proba bit for bit: from the linear model's matrix, through predict_proba for boosting."""
    from risk.models.explanations import calibrated_probability, model_inputs

    X, y = _county(n=1500, seed=6)
    X.loc[:60, "hba1c_last"] = np.nan
    for family, method in (
        ("logistic_regression", "sigmoid"),
        ("logistic_regression", "isotonic"),
        ("gradient_boosting", "sigmoid"),
    ):
        model = CalibratedRiskModel(family, SPEC, {}, calibration_method=method, seed=2).fit(X, y)
        inputs = model_inputs(model, X)
        assert (inputs.transformed is None) == (family == "gradient_boosting")
        got = calibrated_probability(model, X, inputs)
        assert got.tobytes() == model.predict_proba(X)[:, 1].tobytes()
