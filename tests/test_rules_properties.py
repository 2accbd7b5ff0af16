"""Monotonicity of the rule baseline: a worse BP or glucose never lowers the tier.

"Worse" means further from the control range. For BP that is simply higher SBP / DBP. For fasting glucose
it is further from the target range 4.4-7.0 mmol/L on the same side: higher when already at or above the
middle of the range, lower when at or below it — falling glucose is the hypoglycaemia exception (FPG <= 3.9
is an emergency), so "higher FPG is never better" does not hold below the range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.tiers import TIER_RANK, load_rule_set
from risk.tiers.rule_engine import evaluate
from tests.support.rules import (
    base_row,
    days_ago,
    default_rule_data,
    frame,
    with_consistent_bp,
    write_rule_file,
)

FPG_RANGE_MIDDLE = (4.4 + 7.0) / 2
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def feature_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A managed patient with arbitrary (possibly missing) values for everything the rules read."""
    bp_days = draw(maybe(st.integers(0, 800)))
    fu_days = draw(maybe(st.integers(0, 800)))
    values = {
        "age": draw(maybe(st.floats(35, 95))), "sex": draw(maybe(st.sampled_from(["M", "F"]))),
        "has_hypertension": draw(st.booleans()), "has_diabetes_t2": draw(st.booleans()),
        "enrolled_on": days_ago(draw(st.integers(0, 3000))),
        "bp_last_sbp": draw(maybe(st.floats(80, 240))), "bp_last_dbp": draw(maybe(st.floats(40, 140))),
        "bp_days_since_last": bp_days, "bp_last_date": None if bp_days is None else days_ago(bp_days),
        "fpg_last": draw(maybe(st.floats(1.5, 35))),
        "fpg_last_date": maybe_days_ago(draw(maybe(st.integers(0, 800)))),
        "hba1c_last": draw(maybe(st.floats(4, 15))),
        "hba1c_last_date": maybe_days_ago(draw(maybe(st.integers(0, 800)))),
        "fu_days_since_last": fu_days, "fu_last_date": maybe_days_ago(fu_days),
        "fu_consecutive_uncontrolled_bp": draw(maybe(st.integers(0, 5))),
        "fu_consecutive_uncontrolled_fpg": draw(maybe(st.integers(0, 5))),
        "fu_last_smoker": draw(maybe(st.booleans())),
        "fu_last_adherence": draw(maybe(st.sampled_from(["regular", "intermittent", "none"]))),
        "fu_last_danger_symptoms": draw(maybe(st.booleans())),
        "fu_last_adverse_reaction": draw(maybe(st.booleans())),
        "cx_stroke": draw(maybe(st.booleans())), "cx_coronary": draw(maybe(st.booleans())),
        "cx_ckd": draw(maybe(st.booleans())), "cx_retinopathy": draw(maybe(st.booleans())),
        "cx_count": draw(maybe(st.integers(0, 3))), "cx_new_90d": draw(maybe(st.booleans())),
        "pdc_antihypertensive_12m": draw(maybe(st.floats(0, 1))),
        "pdc_antidiabetic_12m": draw(maybe(st.floats(0, 1))),
        "tc_last": draw(maybe(st.floats(2, 9))), "hdl_c_last": draw(maybe(st.floats(0.5, 2.5))),
        "ldl_c_last": draw(maybe(st.floats(1, 6))), "egfr_last": draw(maybe(st.floats(10, 120))),
        "uacr_last": draw(maybe(st.floats(0, 500))), "bmi_last": draw(maybe(st.floats(16, 40))),
        "waist_last": draw(maybe(st.floats(60, 120))), "chinapar_risk_10y": draw(maybe(st.floats(0, 0.5))),
    }
    return base_row(**values)


def maybe_days_ago(days: int | None) -> Any:
    return None if days is None else days_ago(days)


def assert_never_lower(before: list[dict[str, Any]], after: list[dict[str, Any]], rules: Any = None) -> None:
    ranks = evaluate(load_rule_set(rules), frame(*before, *after)).rank
    base, worse = ranks[: len(before)], ranks[len(before):]
    lowered = np.flatnonzero(worse < base)
    assert lowered.size == 0, f"tier lowered for {[(before[i], after[i]) for i in lowered[:1]]}"


@PROPERTY_SETTINGS
@given(rows=st.lists(feature_rows(), min_size=1, max_size=12),
       rises=st.lists(st.tuples(st.floats(0, 80), st.floats(0, 50)), min_size=12, max_size=12))
@pytest.mark.slow
def test_higher_bp_never_lowers_the_tier(rows, rises):
    worse = []
    for row, (sbp_rise, dbp_rise) in zip(rows, rises, strict=False):
        changed = dict(row)
        if changed["bp_last_sbp"] is not None:
            changed["bp_last_sbp"] += sbp_rise
        if changed["bp_last_dbp"] is not None:
            changed["bp_last_dbp"] += dbp_rise
        worse.append(with_consistent_bp(changed))
    assert_never_lower(rows, worse)


@PROPERTY_SETTINGS
@given(rows=st.lists(feature_rows(), min_size=1, max_size=12),
       moves=st.lists(st.floats(0, 20), min_size=12, max_size=12))
@pytest.mark.slow
def test_fpg_further_from_the_target_range_never_lowers_the_tier(rows, moves):
    before, worse = [], []
    for row, move in zip(rows, moves, strict=False):
        if row["fpg_last"] is None:
            continue
        changed = dict(row)
        if row["fpg_last"] >= FPG_RANGE_MIDDLE:
            changed["fpg_last"] = row["fpg_last"] + move
        else:
            changed["fpg_last"] = max(0.5, row["fpg_last"] - move)
        before.append(row)
        worse.append(changed)
    if before:
        assert_never_lower(before, worse)


@PROPERTY_SETTINGS
@given(rows=st.lists(feature_rows(), min_size=1, max_size=12),
       extra=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=12, max_size=12))
@pytest.mark.slow
def test_more_consecutive_uncontrolled_visits_never_lower_the_tier(rows, extra):
    worse = []
    for row, (more_bp, more_fpg) in zip(rows, extra, strict=False):
        changed = dict(row)
        for column, more in (("fu_consecutive_uncontrolled_bp", more_bp),
                             ("fu_consecutive_uncontrolled_fpg", more_fpg)):
            changed[column] = (changed[column] or 0) + more
        worse.append(changed)
    assert_never_lower(rows, worse)


def test_monotone_in_bp_and_glucose_on_a_large_random_sample():
    """The same properties on 20,000 seeded random patients in one pass (complements hypothesis)."""
    rng = np.random.default_rng(20241126)
    n = 20_000
    features = frame(base_row()).iloc[np.zeros(n, dtype=int)].reset_index(drop=True)
    features["age"] = rng.uniform(35, 95, n)
    features["sex"] = rng.choice(["M", "F"], n)
    features["has_diabetes_t2"] = rng.random(n) < 0.4
    features["fu_last_smoker"] = rng.random(n) < 0.3
    features["cx_stroke"] = rng.random(n) < 0.1
    features["egfr_last"] = rng.uniform(15, 120, n)
    features["bmi_last"] = rng.uniform(18, 35, n)
    features["fu_consecutive_uncontrolled_bp"] = rng.integers(0, 4, n)
    features["fu_consecutive_uncontrolled_fpg"] = rng.integers(0, 4, n)
    features["bp_last_sbp"] = rng.uniform(90, 220, n)
    features["bp_last_dbp"] = rng.uniform(50, 130, n)
    features["fpg_last"] = rng.uniform(2, 25, n)
    rule_set = load_rule_set()
    base = evaluate(rule_set, features).rank

    worse_bp = features.copy()
    worse_bp["bp_last_sbp"] += rng.uniform(0, 40, n)
    worse_bp["bp_last_dbp"] += rng.uniform(0, 25, n)
    assert (evaluate(rule_set, worse_bp).rank >= base).all()

    worse_fpg = features.copy()
    fpg = features["fpg_last"].to_numpy()
    move = rng.uniform(0, 8, n)
    worse_fpg["fpg_last"] = np.where(fpg >= FPG_RANGE_MIDDLE, fpg + move, np.maximum(0.5, fpg - move))
    assert (evaluate(rule_set, worse_fpg).rank >= base).all()

    # the hypoglycaemia exception is real: higher FPG alone is not monotone from below the range
    recovered = features.assign(fpg_last=5.5)
    hypo = features.assign(fpg_last=3.5)
    diabetic = features["has_diabetes_t2"].to_numpy()
    assert (evaluate(rule_set, hypo).rank[diabetic] == TIER_RANK["red"]).all()
    assert (evaluate(rule_set, recovered).rank < TIER_RANK["red"]).any()


def test_the_property_check_catches_a_rule_that_rewards_higher_bp(tmp_path):
    data = default_rule_data()
    data["name"], data["version"] = "county", "county-1"  # an edited copy has its own name and version
    data["rules"].append({"id": "low_bp", "tier": "red", "when": "bp_last_sbp < 100",
                          "reason": {"zh": "低血压", "en": "Low BP"}, "source": "project_default"})
    county = write_rule_file(tmp_path, data)
    row = base_row(bp_last_sbp=95.0)
    with pytest.raises(AssertionError, match="tier lowered"):
        assert_never_lower([row], [with_consistent_bp(dict(row, bp_last_sbp=125.0))], rules=county)
