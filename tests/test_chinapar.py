"""China-PAR (Yang X et al., Circulation 2016;134:1430-1440): coefficients and the paper's worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from risk import definitions
from risk.features import chinapar_10y_risk, chinapar_category

MG_DL = 0.0259  # mmol/L per mg/dL as in the paper


def worked_example(male: bool, **overrides: object) -> float:
    """Age 60, untreated SBP 130, TC 210 mg/dL, HDL-C 55 mg/dL, waist 80 cm, non-smoker, diabetes,
    northern, urban, no family history (published: men 11.0 %, women 10.1 %)."""
    inputs = dict(
        age=60,
        male=male,
        sbp=130,
        treated=False,
        tc_mmol=210 * MG_DL,
        hdl_mmol=55 * MG_DL,
        waist_cm=80,
        smoker=False,
        diabetes=True,
        urban=True,
        family_history=False,
    )
    inputs |= overrides
    return float(chinapar_10y_risk(**{k: [v] for k, v in inputs.items()})[0])


def test_published_coefficients() -> None:
    men, women = definitions.chinapar()["men"], definitions.chinapar()["women"]
    assert (men["ln_age"], men["ln_sbp_treated"], men["ln_sbp_untreated"]) == (31.967, 27.388, 26.148)
    assert (men["ln_tc"], men["ln_hdl"], men["ln_waist"], men["smoker"]) == (0.621, -0.695, -0.712, 3.955)
    assert (men["diabetes"], men["northern"], men["urban"], men["family_history"]) == (
        0.357,
        0.475,
        -0.164,
        6.221,
    )
    assert (men["ln_age_x_ln_sbp_treated"], men["ln_age_x_ln_sbp_untreated"]) == (-6.018, -5.731)
    assert (men["ln_age_x_smoker"], men["ln_age_x_family_history"], men["mean_sum"]) == (
        -0.939,
        -1.534,
        140.68,
    )
    assert (women["ln_age"], women["ln_sbp_treated"], women["ln_sbp_untreated"]) == (24.874, 20.709, 19.982)
    assert (women["ln_tc"], women["ln_hdl"], women["ln_waist"], women["smoker"]) == (
        0.058,
        -0.217,
        1.475,
        0.495,
    )
    assert (women["diabetes"], women["northern"], women["mean_sum"]) == (0.567, 0.544, 117.26)
    assert (women["ln_age_x_ln_sbp_treated"], women["ln_age_x_ln_sbp_untreated"]) == (-4.528, -4.360)
    assert definitions.chinapar()["northern"] is True  # Suixi, Huaibei: north of the Huai River


def test_worked_example_by_hand() -> None:
    """The men's sum written out term by term, independent of the implementation."""
    ln = math.log
    s = (
        31.967 * ln(60)
        + 26.148 * ln(130)
        + 0.621 * ln(210)
        - 0.695 * ln(55)
        - 0.712 * ln(80)
        + 0.357
        + 0.475
        - 0.164
        - 5.731 * ln(60) * ln(130)
    )
    by_hand = 1 - 0.970 ** math.exp(s - 140.68)
    assert worked_example(male=True) == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("male, published", [(True, 0.110), (False, 0.101)])
def test_worked_example_matches_the_paper(male: bool, published: float) -> None:
    assert worked_example(male=male) == pytest.approx(published, abs=0.001)


def test_risk_moves_the_right_way() -> None:
    base = worked_example(male=True)
    assert worked_example(male=True, smoker=True) > base
    assert worked_example(male=True, sbp=160) > base
    # Family history x ln(age) interaction: 6.221 - 1.534 ln(age) is positive only below ~57.7 years.
    assert worked_example(male=True, age=45, family_history=True) > worked_example(male=True, age=45)
    assert worked_example(male=True, age=60, family_history=True) < base
    assert worked_example(male=True, urban=False) > base  # urban coefficient is negative
    assert worked_example(male=True, treated=True) > base  # same SBP on treatment: higher risk
    assert worked_example(male=False, smoker=True) > worked_example(male=False)


def test_missing_inputs_and_age_range_give_nan() -> None:
    assert math.isnan(worked_example(male=True, tc_mmol=None))
    assert math.isnan(worked_example(male=True, smoker=None))
    assert math.isnan(worked_example(male=True, family_history=None))
    assert not math.isnan(worked_example(male=False, family_history=None, urban=None))  # unused for women
    assert math.isnan(worked_example(male=True, age=34.9))
    assert math.isnan(worked_example(male=True, age=75))
    assert not math.isnan(worked_example(male=True, age=74.9))


def test_vectorised_over_many_persons() -> None:
    n = 1000
    rng = np.random.default_rng(1)
    risk = chinapar_10y_risk(
        age=rng.uniform(35, 74, n),
        male=rng.integers(0, 2, n).astype(bool),
        sbp=rng.uniform(100, 190, n),
        treated=rng.integers(0, 2, n).astype(bool),
        tc_mmol=rng.uniform(3, 8, n),
        hdl_mmol=rng.uniform(0.8, 2, n),
        waist_cm=rng.uniform(60, 110, n),
        smoker=rng.integers(0, 2, n).astype(bool),
        diabetes=rng.integers(0, 2, n).astype(bool),
        urban=rng.integers(0, 2, n).astype(bool),
        family_history=rng.integers(0, 2, n).astype(bool),
    )
    assert risk.shape == (n,) and np.all((risk > 0) & (risk < 1))


def test_categories() -> None:
    got = chinapar_category([0.0499, 0.05, 0.0999, 0.10, None, float("nan")])
    assert list(got) == ["low", "medium", "medium", "high", None, None]
