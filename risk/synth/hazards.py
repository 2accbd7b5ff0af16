"""Outcome hazards of the synthetic county from published risk equations (synth_county.yaml `outcomes`).

Each function returns an annual rate (events per person-year) for a vector of patient-months; the course
simulation (trajectories.py) turns rates into monthly probabilities, multiplies in the unobserved frailty
and the prior-event hazard ratios, and draws events month by month so an event raises later hazards.
"""

from __future__ import annotations

import numpy as np

from risk.features.chinapar import chinapar_10y_risk

OUTCOMES = [
    "ascvd",
    "heart_failure",
    "kidney",
    "microvascular",
    "hypoglycaemia",
    "hypertension_admission",
    "diabetes_admission",
]


def true_hba1c(fpg: np.ndarray) -> np.ndarray:
    """HbA1c (%) from mean fasting glucose (mmol/L), the conversion the lab rows use too."""
    return (fpg + 2.59) / 1.59


def ascvd_rate(
    out: dict,
    chinapar: dict,
    age: np.ndarray,
    male: np.ndarray,
    sbp: np.ndarray,
    treated: np.ndarray,
    tc: np.ndarray,
    hdl: np.ndarray,
    waist: np.ndarray,
    smoker: np.ndarray,
    diabetes: np.ndarray,
    urban: np.ndarray,
    family_history: np.ndarray,
    northern: bool,
) -> np.ndarray:
    """Annual ASCVD rate from the China-PAR 10-year risk (the project's implementation, reused)."""
    low, high = chinapar["age_range"]
    clipped = np.clip(age, low, high)
    risk = chinapar_10y_risk(
        clipped,
        male.astype(float),
        np.clip(sbp, 80, 260),
        treated.astype(float),
        tc,
        hdl,
        waist,
        smoker.astype(float),
        diabetes.astype(float),
        urban.astype(float),
        family_history.astype(float),
        northern=np.full(len(age), float(northern)),
        coefficients=chinapar,
    )
    rate = -np.log1p(-np.clip(risk, 0.0, 0.999)) / 10
    beyond = np.maximum(age - high, 0) - np.maximum(low - age, 0)
    return rate * np.exp(out["ascvd"]["age_slope_beyond_range"] * beyond)


def heart_failure_rate(
    out: dict, age: np.ndarray, sbp: np.ndarray, diabetes: np.ndarray, male: np.ndarray
) -> np.ndarray:
    hf = out["heart_failure"]
    log_hr = (
        hf["log_hr_age_per_10"] * (age - 65) / 10
        + hf["log_hr_sbp_per_10"] * (sbp - 140) / 10
        + hf["log_hr_diabetes"] * diabetes
        + hf["log_hr_male"] * male
    )
    return hf["per_year_at_reference"] * np.exp(log_hr)


def kdigo_cell(out: dict, egfr: np.ndarray, acr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G row 0..5 for G1..G5 with G3a/G3b split, A column 0..2) of the KDIGO grid."""
    k = out["kidney"]
    g = np.searchsorted(-np.asarray(k["egfr_cuts"], dtype=float), -egfr, side="right")
    a = np.searchsorted(np.asarray(k["acr_cuts"], dtype=float), acr, side="right")
    return g, a


def kidney_rate(out: dict, egfr: np.ndarray, acr: np.ndarray) -> np.ndarray:
    k = out["kidney"]
    g, a = kdigo_cell(out, egfr, acr)
    return k["per_year_at_reference"] * np.asarray(k["relative"], dtype=float)[g, a]


def microvascular_rate(out: dict, fpg: np.ndarray, diabetes: np.ndarray) -> np.ndarray:
    mv = out["microvascular"]
    rate = mv["per_year_at_hba1c_7"] * np.exp(mv["log_hr_per_hba1c_1"] * (true_hba1c(fpg) - 7.0))
    return np.where(diabetes, rate, 0.0)


def hypoglycaemia_rate(
    out: dict, age: np.ndarray, insulin: np.ndarray, sulfonylurea: np.ndarray, diabetes: np.ndarray
) -> np.ndarray:
    hy = out["hypoglycaemia"]
    base = np.where(
        insulin,
        hy["per_year_insulin"],
        np.where(sulfonylurea, hy["per_year_sulfonylurea"], hy["per_year_other"]),
    )
    return np.where(diabetes, base * np.exp(hy["log_hr_age_per_10"] * (age - 65) / 10), 0.0)


def hypertension_admission_rate(out: dict, sbp: np.ndarray, hypertension: np.ndarray) -> np.ndarray:
    ha = out["hypertension_admission"]
    above = np.maximum(sbp - 160, 0) / 10
    below = np.minimum(sbp - 160, 0) / 10
    rate = ha["per_year_at_160"] * np.exp(
        ha["log_hr_per_10_above_160"] * above + ha["log_hr_per_10_below_160"] * below
    )
    return np.where(hypertension, rate, 0.0)


def diabetes_admission_rate(out: dict, fpg: np.ndarray, diabetes: np.ndarray) -> np.ndarray:
    da = out["diabetes_admission"]
    return np.where(diabetes, da["per_year_at_fpg_7"] * np.exp(da["log_hr_fpg_per_1"] * (fpg - 7.0)), 0.0)


def gompertz_per_year(out: dict, age: np.ndarray) -> np.ndarray:
    return out["death_gompertz_at_60"] * np.exp(out["death_log_hr_per_year"] * (age - 60)) + 0.0004


def monthly_probability(rate_per_year: np.ndarray) -> np.ndarray:
    return -np.expm1(-rate_per_year / 12)
