"""China-PAR 10-year ASCVD risk (Yang X et al., Circulation 2016;134:1430-1440), vectorised.

Coefficients, baseline survival and the northern-China flag are data in risk/definitions/chinapar.yaml.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from risk import definitions

FloatArray = npt.NDArray[np.float64]


def _as_float(values: Any) -> FloatArray:
    """Array of floats with NaN for missing (accepts bool/None/pandas nullable values)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fbiu":  # plain numeric: no pandas round trip
        return np.atleast_1d(values.astype(np.float64))
    import pandas as pd  # only for other inputs: `risk features` passes numpy arrays and never imports it

    series = (
        values
        if isinstance(values, pd.Series)
        else pd.Series(np.atleast_1d(np.asarray(values, dtype=object)))
    )
    if series.dtype == object:
        series = series.where(series.notna(), None).astype("Float64")
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def chinapar_10y_risk(
    age: Any,
    male: Any,
    sbp: Any,
    treated: Any,
    tc_mmol: Any,
    hdl_mmol: Any,
    waist_cm: Any,
    smoker: Any,
    diabetes: Any,
    urban: Any,
    family_history: Any,
    northern: Any | None = None,
    coefficients: dict[str, Any] | None = None,
) -> FloatArray:
    """10-year ASCVD risk (0..1) per person; NaN when a needed input is missing or age is outside 35-74.

    Array-like inputs of equal length. Booleans may be True/False/None. TC and HDL-C in mmol/L (converted to
    mg/dL as in the paper), SBP in mmHg, waist in cm. `northern` defaults to the county flag in the YAML.
    Inputs whose coefficient is zero for a sex (urban, family history for women) may be missing.
    """
    params = coefficients or definitions.chinapar()
    age_v, male_v, sbp_v, treated_v = _as_float(age), _as_float(male), _as_float(sbp), _as_float(treated)
    tc_v, hdl_v, waist_v = _as_float(tc_mmol), _as_float(hdl_mmol), _as_float(waist_cm)
    smoker_v, diabetes_v = _as_float(smoker), _as_float(diabetes)
    urban_v, family_v = _as_float(urban), _as_float(family_history)
    northern_v = np.full(age_v.shape, float(params["northern"])) if northern is None else _as_float(northern)
    divisor = float(params["mg_dl_per_mmol_l_divisor"])
    low, high = params["age_range"]

    with np.errstate(invalid="ignore", divide="ignore"):
        ln_age, ln_sbp = np.log(age_v), np.log(sbp_v)
        ln_tc, ln_hdl, ln_waist = np.log(tc_v / divisor), np.log(hdl_v / divisor), np.log(waist_v)
        risk = np.full(age_v.shape, np.nan)
        for sex_value, key in ((1.0, "men"), (0.0, "women")):
            c = params[key]
            is_treated = treated_v == 1.0
            sum_beta = (
                c["ln_age"] * ln_age
                + np.where(is_treated, c["ln_sbp_treated"], c["ln_sbp_untreated"]) * ln_sbp
                + c["ln_tc"] * ln_tc
                + c["ln_hdl"] * ln_hdl
                + c["ln_waist"] * ln_waist
                + c["smoker"] * smoker_v
                + c["diabetes"] * diabetes_v
                + c["northern"] * northern_v
                + np.where(is_treated, c["ln_age_x_ln_sbp_treated"], c["ln_age_x_ln_sbp_untreated"])
                * ln_age
                * ln_sbp
                + c["ln_age_x_smoker"] * ln_age * smoker_v
                + _optional_term(c["urban"], urban_v)
                + _optional_term(c["family_history"], family_v)
                + _optional_term(c["ln_age_x_family_history"], family_v) * ln_age
            )
            sex_risk = 1.0 - np.power(float(c["baseline_survival"]), np.exp(sum_beta - float(c["mean_sum"])))
            chosen = (male_v == sex_value) & (age_v >= low) & (age_v < high + 1) & ~np.isnan(treated_v)
            risk = np.where(chosen, sex_risk, risk)
    return risk


def _optional_term(coefficient: float, values: FloatArray) -> FloatArray:
    """beta * x, where a missing x matters only when beta is non-zero."""
    if float(coefficient) == 0.0:
        return np.zeros(values.shape)
    return float(coefficient) * values


CATEGORIES = ("low", "medium", "high")


def chinapar_category_codes(risk: Any) -> npt.NDArray[np.int8]:
    """The category as an index into CATEGORIES, -1 for missing (chinapar_category's values)."""
    cuts = definitions.thresholds()["chinapar_categories"]
    values = _as_float(risk)
    codes = np.full(values.shape, -1, dtype=np.int8)
    codes[values < cuts["medium_from"]] = 0
    codes[(values >= cuts["medium_from"]) & (values < cuts["high_from"])] = 1
    codes[values >= cuts["high_from"]] = 2
    return codes


def chinapar_category(risk: Any) -> npt.NDArray[np.object_]:
    """'low' (< 5 %), 'medium' (5-9.9 %), 'high' (>= 10 %), None for missing (thresholds.yaml)."""
    codes = chinapar_category_codes(risk)
    out = np.full(codes.shape, None, dtype=object)
    for code, name in enumerate(CATEGORIES):
        out[codes == code] = name
    return out
