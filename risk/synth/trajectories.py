"""Monthly latent course of each patient: adherence, dispensing, true BP and glucose, hazards, outcomes.

Patients are residents with true hypertension or diabetes (registered or not). All quantities are
(patients x months) matrices so a block is simulated with a handful of numpy operations per month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.synth.context import Context
from risk.synth.population import Residents

ADHERENCE_LABELS = ["regular", "intermittent", "none"]
NEVER = np.iinfo(np.int32).max


@dataclass
class Course:
    idx: np.ndarray  # index of each patient into the block's residents
    adherence_class: np.ndarray  # usual class, 0 regular 1 intermittent 2 none
    adherence: np.ndarray  # (P, M) monthly state
    treated_htn: np.ndarray  # (P, M)
    treated_dm: np.ndarray
    dispense_htn: np.ndarray  # (P, M) a dispensing visit for antihypertensives that month
    dispense_dm: np.ndarray
    n_drugs_htn: np.ndarray
    n_drugs_dm: np.ndarray
    sbp: np.ndarray  # (P, M) true values
    dbp: np.ndarray
    fpg: np.ndarray
    sbp_untreated: np.ndarray
    fpg_untreated: np.ndarray
    frailty: np.ndarray
    cv_hazard: np.ndarray  # (P, M) monthly probability of a CV admission
    cx_hazard: np.ndarray  # new complication
    dm_hazard: np.ndarray  # diabetes admission
    death_hazard: np.ndarray
    unreg_treated: np.ndarray
    unreg_screened: np.ndarray
    unreg_claims: np.ndarray


def simulate_course(ctx: Context, rng: np.random.Generator, res: Residents) -> Course:
    p = ctx.params
    cal = ctx.calendar
    n_months = cal.n_months
    idx = np.flatnonzero(res.htn | res.dm)
    n = len(idx)
    htn, dm = res.htn[idx], res.dm[idx]
    reg_htn, reg_dm = res.reg_htn[idx], res.reg_dm[idx]
    age0 = res.age0[idx]
    beh = p["behaviour"]
    months = np.arange(n_months)

    unregistered = (htn & ~reg_htn) | (dm & ~reg_dm)
    unreg_treated = unregistered & (rng.random(n) < beh["unregistered_treated"])
    unreg_screened = unregistered & (rng.random(n) < beh["unregistered_screened"])
    unreg_claims = unregistered & (rng.random(n) < beh["unregistered_claims_dx"])
    enrol_month_htn = np.where(reg_htn, cal.month_index(res.enrol_htn[idx]), NEVER)
    enrol_month_htn = np.where(reg_htn & (res.enrol_htn[idx] < cal.start_day), 0, enrol_month_htn)
    enrol_month_dm = np.where(reg_dm, cal.month_index(res.enrol_dm[idx]), NEVER)
    enrol_month_dm = np.where(reg_dm & (res.enrol_dm[idx] < cal.start_day), 0, enrol_month_dm)
    treated_htn = htn[:, None] & (
        (months[None, :] >= enrol_month_htn[:, None]) | (unreg_treated & ~reg_htn)[:, None]
    )
    treated_dm = dm[:, None] & (
        (months[None, :] >= enrol_month_dm[:, None]) | (unreg_treated & ~reg_dm)[:, None]
    )

    # Adherence: a persistent usual class per patient, monthly excursions, and a one-off change of class.
    shares = beh["adherence_share"]
    share_vec = np.array([shares[k] for k in ADHERENCE_LABELS])
    usual = rng.choice(3, size=n, p=share_vec / share_vec.sum())
    changes_at = rng.integers(0, n_months * 4, size=n)  # within history for ~1 in 4 patients
    later_class = rng.choice(3, size=n, p=share_vec / share_vec.sum())
    usual_by_month = np.where(months[None, :] >= changes_at[:, None], later_class[:, None], usual[:, None])
    excursion = rng.random((n, n_months)) > beh["adherence_monthly_stay"]
    adherence = np.where(excursion, rng.choice(3, size=(n, n_months)), usual_by_month).astype(np.int8)
    disp_prob = np.array([beh["dispense_probability"][k] for k in ADHERENCE_LABELS])[adherence]
    dispense_htn = treated_htn & (rng.random((n, n_months)) < disp_prob)
    dispense_dm = treated_dm & (rng.random((n, n_months)) < disp_prob)

    bp = p["blood_pressure"]
    sbp_untreated = np.where(
        htn,
        rng.normal(
            bp["untreated_sbp_mean"] + bp["untreated_sbp_age_slope"] * (age0 - 60), bp["untreated_sbp_sd"]
        ),
        np.clip(
            rng.normal(bp["non_hypertensive_sbp_mean"] + 0.3 * (age0 - 60), bp["non_hypertensive_sbp_sd"]),
            95,
            136,
        ),
    )
    sbp_untreated = np.where(htn, np.maximum(sbp_untreated, 138), sbp_untreated)
    n_drugs_htn = np.where(htn, 1 + rng.choice(3, size=n, p=bp["drugs_per_patient"]), 0)
    response = rng.lognormal(0.0, bp["response_sd"], size=n)
    coverage_htn = _coverage(dispense_htn)
    season = bp["winter_amplitude"] * np.cos(2 * np.pi * cal.month_of_year / 12)
    noise = _ar1(rng, n, n_months, bp["ar_monthly"], bp["ar_sd"])
    sbp = (
        sbp_untreated[:, None]
        + bp["drift_per_year"] * months[None, :] / 12
        + season[None, :]
        + noise
        - bp["sbp_drop_per_drug"] * (n_drugs_htn * response)[:, None] * coverage_htn
    )
    dbp_offset = rng.normal(bp["dbp_intercept"] + bp["dbp_age_slope"] * (age0 - 60), bp["dbp_sd"])
    dbp = bp["dbp_from_sbp"] * sbp + dbp_offset[:, None]

    gl = p["glucose"]
    fpg_untreated = np.where(
        dm,
        np.maximum(rng.normal(gl["untreated_fpg_mean"], gl["untreated_fpg_sd"], size=n), 6.2),
        np.clip(rng.normal(gl["non_diabetic_fpg_mean"], gl["non_diabetic_fpg_sd"], size=n), 3.9, 6.9),
    )
    n_drugs_dm = np.where(dm, 1 + rng.choice(3, size=n, p=gl["drugs_per_patient"]), 0)
    dm_response = rng.lognormal(0.0, 0.3, size=n)
    # Drugs shrink the excess over a physiological floor multiplicatively: a subtracted fixed drop per
    # drug piled over-treated patients at the floor and produced implausibly many readings <= 3.9.
    floor = gl["treated_fpg_floor"]
    untreated_course = fpg_untreated[:, None] + _ar1(rng, n, n_months, gl["ar_monthly"], gl["ar_sd"])
    excess = np.maximum(untreated_course - floor, 0.0)
    shrink = np.exp(-gl["fpg_excess_shrink_per_drug"] * (n_drugs_dm * dm_response)[:, None]
                    * _coverage(dispense_dm))
    fpg = floor + excess * shrink
    fpg = np.where(dm[:, None], fpg, np.clip(fpg, 3.9, 6.9))

    out = p["outcomes"]
    frailty = rng.normal(0.0, out["frailty_sd"], size=n)
    age = age0[:, None] + months[None, :] / 12
    comorbidity = res.comorbidity[idx]
    fixed = (
        out["log_hr_male"] * res.male[idx]
        + out["log_hr_smoker"] * res.smoker[idx]
        + out["log_hr_comorbidity"] * comorbidity
        + frailty
    )
    linear = (
        out["log_hr_sbp_per_10"] * (sbp - 140) / 10
        + np.where(dm[:, None], out["log_hr_fpg_per_1"] * (fpg - 7), 0.0)
        + out["log_hr_nonadherent"] * ((adherence == 2) & (treated_htn | treated_dm))
        + fixed[:, None]
    )
    age_term = out["log_hr_age_per_10"] * (age - 60) / 10
    relative = np.exp(linear + age_term)
    cv_hazard = -np.expm1(-out["cv_admission_per_year"] / 12 * relative)
    cx_hazard = -np.expm1(-out["complication_per_year"] / 12 * relative)
    dm_hazard = np.where(dm[:, None], -np.expm1(-out["diabetes_admission_per_year"] / 12 * relative), 0.0)
    death_hazard = -np.expm1(-gompertz_per_year(out, age) / 12 * np.exp(out["death_patient_weight"] * linear))
    return Course(
        idx=idx,
        adherence_class=usual,
        adherence=adherence,
        treated_htn=treated_htn,
        treated_dm=treated_dm,
        dispense_htn=dispense_htn,
        dispense_dm=dispense_dm,
        n_drugs_htn=n_drugs_htn,
        n_drugs_dm=n_drugs_dm,
        sbp=sbp,
        dbp=dbp,
        fpg=fpg,
        sbp_untreated=sbp_untreated,
        fpg_untreated=fpg_untreated,
        frailty=frailty,
        cv_hazard=cv_hazard,
        cx_hazard=cx_hazard,
        dm_hazard=dm_hazard,
        death_hazard=death_hazard,
        unreg_treated=unreg_treated,
        unreg_screened=unreg_screened,
        unreg_claims=unreg_claims,
    )


def gompertz_per_year(out: dict, age: np.ndarray) -> np.ndarray:
    return out["death_gompertz_at_60"] * np.exp(out["death_log_hr_per_year"] * (age - 60)) + 0.0004


def first_event_month(rng: np.random.Generator, hazard: np.ndarray) -> np.ndarray:
    """Month of the first event of a monthly-hazard matrix; n_months when none happens."""
    happened = rng.random(hazard.shape, dtype=np.float32) < hazard
    return np.where(happened.any(axis=1), happened.argmax(axis=1), hazard.shape[1])


def _coverage(dispensed: np.ndarray) -> np.ndarray:
    """Share of a month covered by drugs: this month's supply plus carry-over from last month's."""
    previous = np.zeros_like(dispensed)
    previous[:, 1:] = dispensed[:, :-1]
    return 0.75 * dispensed + 0.25 * previous


def _ar1(rng: np.random.Generator, n: int, n_months: int, phi: float, sd: float) -> np.ndarray:
    shocks = rng.normal(0.0, sd, size=(n, n_months))
    out = np.empty_like(shocks)
    out[:, 0] = shocks[:, 0] / np.sqrt(1 - phi**2)
    for m in range(1, n_months):
        out[:, m] = phi * out[:, m - 1] + shocks[:, m]
    return out
