"""Monthly latent course of each patient: adherence, dispensing, care that responds to readings, true BP and
glucose, outcome hazards and events.

Patients are residents with true hypertension or diabetes (registered or not). All quantities are
(patients x months) matrices so a block is simulated with a handful of numpy operations per month.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk import definitions
from risk.synth import hazards
from risk.synth.context import Context
from risk.synth.hazards import gompertz_per_year
from risk.synth.population import Residents

ADHERENCE_LABELS = ["regular", "intermittent", "none"]
NEVER = np.iinfo(np.int32).max


@dataclass
class Visits:
    """Scheduled follow-up visits of managed patients (drawn before the course: care responds to them)."""

    patient: np.ndarray  # index into the course's patients
    day: np.ndarray
    mode: np.ndarray  # 0 clinic, 1 home, 2 phone (no measurement)
    sbp_noise: np.ndarray  # measurement error of the reading taken at the visit
    dbp_noise: np.ndarray
    fpg_factor: np.ndarray


@dataclass
class Course:
    idx: np.ndarray  # index of each patient into the block's residents
    adherence_class: np.ndarray  # usual class, 0 regular 1 intermittent 2 none
    adherence: np.ndarray  # (P, M) monthly state
    treated_htn: np.ndarray  # (P, M)
    treated_dm: np.ndarray
    dispense_htn: np.ndarray  # (P, M) a dispensing visit for antihypertensives that month
    dispense_dm: np.ndarray
    n_drugs_htn: np.ndarray  # (P, M) drug classes prescribed that month (stepped up after visits)
    n_drugs_dm: np.ndarray
    products_htn: np.ndarray  # (P, 4) product index per drug slot (definitions order)
    products_dm: np.ndarray  # (P, 3)
    sbp: np.ndarray  # (P, M) true values
    dbp: np.ndarray
    fpg: np.ndarray
    egfr: np.ndarray  # (P, M) true eGFR (slow decline)
    sbp_untreated: np.ndarray
    fpg_untreated: np.ndarray
    frailty: np.ndarray
    visits: Visits
    intensified_htn: np.ndarray  # step-ups per patient over the history
    intensified_dm: np.ndarray
    rates: dict[str, np.ndarray]  # outcome -> (P, M) monthly probability used (frailty, prior events in)
    events: dict[str, tuple[np.ndarray, np.ndarray]]  # outcome -> (patient, month) of each event
    death_hazard: np.ndarray
    unreg_treated: np.ndarray
    unreg_screened: np.ndarray
    unreg_claims: np.ndarray


def simulate_course(
    ctx: Context,
    rng: np.random.Generator,
    res: Residents,
    body: Any,
    schedule: Callable[[np.ndarray], Visits],
) -> Course:
    """Monthly course of every patient. `body` holds per-person TC, HDL-C, waist, eGFR and UACR;
    `schedule(patient_idx)` draws the follow-up visit plan (care.schedule_visits)."""
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
    n_htn0 = np.where(htn, 1 + rng.choice(3, size=n, p=bp["drugs_per_patient"]), 0)
    response = rng.lognormal(0.0, bp["response_sd"], size=n)
    coverage_htn = _coverage(dispense_htn)
    # Seasonal BP: a cosine peaking in January; winter_amplitude is half the January-July difference.
    season = bp["winter_amplitude"] * np.cos(2 * np.pi * cal.month_of_year / 12)
    base_sbp = (
        sbp_untreated[:, None]
        + bp["drift_per_year"] * months[None, :] / 12
        + season[None, :]
        + _ar1(rng, n, n_months, bp["ar_monthly"], bp["ar_sd"])
    )
    dbp_offset = rng.normal(bp["dbp_intercept"] + bp["dbp_age_slope"] * (age0 - 60), bp["dbp_sd"])

    gl = p["glucose"]
    fpg_untreated = np.where(
        dm,
        np.maximum(rng.normal(gl["untreated_fpg_mean"], gl["untreated_fpg_sd"], size=n), 6.2),
        np.clip(rng.normal(gl["non_diabetic_fpg_mean"], gl["non_diabetic_fpg_sd"], size=n), 3.9, 6.9),
    )
    n_dm0 = np.where(dm, 1 + rng.choice(3, size=n, p=gl["drugs_per_patient"]), 0)
    dm_response = rng.lognormal(0.0, 0.3, size=n)
    # Drugs shrink the excess over a physiological floor multiplicatively: a subtracted fixed drop per
    # drug piled over-treated patients at the floor and produced implausibly many readings <= 3.9.
    floor = gl["treated_fpg_floor"]
    untreated_course = fpg_untreated[:, None] + _ar1(rng, n, n_months, gl["ar_monthly"], gl["ar_sd"])
    excess = np.maximum(untreated_course - floor, 0.0)
    coverage_dm = _coverage(dispense_dm)

    # Products per drug slot (distinct; Gumbel top-k on the product weights): a step-up adds the next one.
    products_htn = _top_products(rng, p["drugs"]["antihypertensive"], n, 4)
    products_dm = _top_products(rng, p["drugs"]["antidiabetic"], n, 3)

    # Care that responds to readings: at each measured follow-up with an uncontrolled reading the doctor adds
    # a drug with probability 1 - therapeutic inertia, effective from the next month.
    visits = schedule(idx)
    care = p["care_response"]
    visit_month = cal.month_index(visits.day)
    order = np.argsort(visit_month, kind="stable")
    bounds = np.searchsorted(visit_month[order], np.arange(n_months + 1))
    enrol_day_htn, enrol_day_dm = res.enrol_htn[idx], res.enrol_dm[idx]
    n_drugs_htn = np.zeros((n, n_months), dtype=np.int8)
    n_drugs_dm = np.zeros((n, n_months), dtype=np.int8)
    sbp = np.empty((n, n_months))
    fpg = np.empty((n, n_months))
    current_htn, current_dm = n_htn0.copy(), n_dm0.copy()
    stepped_htn = np.zeros(n, dtype=np.int16)
    stepped_dm = np.zeros(n, dtype=np.int16)
    for m in range(n_months):
        n_drugs_htn[:, m] = current_htn
        n_drugs_dm[:, m] = current_dm
        sbp[:, m] = base_sbp[:, m] - bp["sbp_drop_per_drug"] * current_htn * response * coverage_htn[:, m]
        shrink = np.exp(-gl["fpg_excess_shrink_per_drug"] * current_dm * dm_response * coverage_dm[:, m])
        fpg[:, m] = floor + excess[:, m] * shrink
        rows = order[bounds[m] : bounds[m + 1]]
        rows = rows[visits.mode[rows] != 2]
        v = visits.patient[rows]
        seen_sbp = sbp[v, m] + visits.sbp_noise[rows]
        seen_dbp = bp["dbp_from_sbp"] * sbp[v, m] + dbp_offset[v] + visits.dbp_noise[rows]
        seen_fpg = fpg[v, m] * visits.fpg_factor[rows]
        day = visits.day[rows]
        up_htn = v[
            reg_htn[v]
            & (day >= enrol_day_htn[v])
            & ((seen_sbp >= 140) | (seen_dbp >= 90))
            & (rng.random(len(v)) >= care["therapeutic_inertia_htn"])
            & (current_htn[v] < care["max_antihypertensive_classes"])
        ]
        up_dm = v[
            dm[v]
            & reg_dm[v]
            & (day >= enrol_day_dm[v])
            & (seen_fpg >= 7.0)
            & (rng.random(len(v)) >= care["therapeutic_inertia_dm"])
            & (current_dm[v] < care["max_antidiabetic_drugs"])
        ]
        up_htn, up_dm = np.unique(up_htn), np.unique(up_dm)
        current_htn[up_htn] += 1
        current_dm[up_dm] += 1
        stepped_htn[up_htn] += 1
        stepped_dm[up_dm] += 1
    dbp = bp["dbp_from_sbp"] * sbp + dbp_offset[:, None]
    fpg = np.where(dm[:, None], fpg, np.clip(fpg, 3.9, 6.9))

    out = p["outcomes"]
    frailty = rng.normal(0.0, out["frailty_sd"], size=n)
    age = age0[:, None] + months[None, :] / 12
    egfr = np.clip(
        res_egfr(body, idx)[:, None] - out["kidney"]["egfr_decline_per_year"] * months[None, :] / 12, 3, 150
    )
    rates = _outcome_rates(ctx, res, idx, body, age, sbp, fpg, egfr, treated_htn, n_drugs_dm, products_dm)
    events, used, death_hazard = _draw_events(ctx, rng, res, idx, age, rates, frailty, dm, egfr)
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
        products_htn=products_htn,
        products_dm=products_dm,
        sbp=sbp,
        dbp=dbp,
        fpg=fpg,
        egfr=egfr,
        sbp_untreated=sbp_untreated,
        fpg_untreated=fpg_untreated,
        frailty=frailty,
        visits=visits,
        intensified_htn=stepped_htn,
        intensified_dm=stepped_dm,
        rates=used,
        events=events,
        death_hazard=death_hazard,
        unreg_treated=unreg_treated,
        unreg_screened=unreg_screened,
        unreg_claims=unreg_claims,
    )


def res_egfr(body: Any, idx: np.ndarray) -> np.ndarray:
    return np.asarray(body.egfr)[idx]


def _top_products(rng: np.random.Generator, products: list[dict], n: int, k: int) -> np.ndarray:
    weights = np.array([d["weight"] for d in products], dtype=float)
    keys = np.log(weights / weights.sum())[None, :] + rng.gumbel(size=(n, len(products)))
    return np.argsort(-keys, axis=1)[:, :k]


def _exposure(n_drugs: np.ndarray, products: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """(P, M): a drug slot in use that month holds a product with `flag`."""
    exposed = np.zeros(n_drugs.shape, dtype=bool)
    for j in range(products.shape[1]):
        exposed |= (n_drugs > j) & flag[products[:, j]][:, None]
    return exposed


def _outcome_rates(
    ctx: Context,
    res: Residents,
    idx: np.ndarray,
    body: Any,
    age: np.ndarray,
    sbp: np.ndarray,
    fpg: np.ndarray,
    egfr: np.ndarray,
    treated_htn: np.ndarray,
    n_drugs_dm: np.ndarray,
    products_dm: np.ndarray,
) -> dict[str, np.ndarray]:
    """Annual rate per outcome before frailty and prior events, (P, M) each."""
    out = ctx.params["outcomes"]
    shape = sbp.shape

    def full(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(values)[:, None], shape).ravel()

    male, dm, htn = res.male[idx], res.dm[idx], res.htn[idx]
    ascvd = hazards.ascvd_rate(
        out,
        definitions.chinapar(),
        age.ravel(),
        full(male),
        sbp.ravel(),
        treated_htn.ravel(),
        full(body.tc[idx]),
        full(body.hdl[idx]),
        full(body.waist[idx]),
        full(res.smoker[idx]),
        full(dm),
        full(res.urban[idx]),
        full(res.family_history[idx]),
        ctx.params["geography"]["northern"],
    ).reshape(shape)
    atc = np.array([d["atc"] for d in ctx.params["drugs"]["antidiabetic"]])
    insulin = _exposure(n_drugs_dm, products_dm, np.char.startswith(atc, "A10A"))
    sulfonylurea = _exposure(n_drugs_dm, products_dm, np.char.startswith(atc, "A10BB"))
    return {
        "ascvd": ascvd,
        "heart_failure": hazards.heart_failure_rate(out, age, sbp, dm[:, None], male[:, None]),
        "kidney": hazards.kidney_rate(out, egfr, np.broadcast_to(body.uacr[idx, None], shape)),
        "microvascular": hazards.microvascular_rate(out, fpg, dm[:, None]),
        "hypoglycaemia": hazards.hypoglycaemia_rate(out, age, insulin, sulfonylurea, dm[:, None]),
        "hypertension_admission": hazards.hypertension_admission_rate(out, sbp, htn[:, None]),
        "diabetes_admission": hazards.diabetes_admission_rate(out, fpg, dm[:, None]),
    }


def _draw_events(
    ctx: Context,
    rng: np.random.Generator,
    res: Residents,
    idx: np.ndarray,
    age: np.ndarray,
    rates: dict[str, np.ndarray],
    frailty: np.ndarray,
    dm: np.ndarray,
    egfr: np.ndarray,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray], np.ndarray]:
    """Events month by month: an ASCVD event (or a prior stroke / CHD) multiplies later ASCVD (recurrence),
    heart-failure (after MI) and death hazards. Returns the events, the monthly probabilities used (frailty
    and prior events in) and the death hazard. Events are drawn for every month; the caller drops those after
    death or moving away."""
    out = ctx.params["outcomes"]
    prior = out["prior_event_hr"]
    n, n_months = age.shape
    codes = res.other_codes
    other = res.other[idx]
    had_ascvd = other[:, [codes.index("coronary_heart_disease"), codes.index("stroke_sequelae")]].any(axis=1)
    had_mi = other[:, codes.index("coronary_heart_disease")].copy()
    frail = np.exp(frailty)
    death_base = hazards.gompertz_per_year(out, age) * np.exp(
        out["death_log_hr_frailty"] * frailty[:, None]
        + out["death_log_hr_diabetes"] * dm[:, None]
        + out["death_log_hr_smoker"] * res.smoker[idx][:, None]
        + out["death_log_hr_low_egfr"] * (egfr < 45)
    )
    used = {name: np.empty((n, n_months), dtype=np.float32) for name in rates}
    death_hazard = np.empty((n, n_months), dtype=np.float32)
    found: dict[str, list[np.ndarray]] = {name: [] for name in rates}
    stroke_share = out["ascvd"]["stroke_share"]
    for m in range(n_months):
        multiplier = {
            "ascvd": np.where(had_ascvd, prior["recurrent_ascvd"], 1.0),
            "heart_failure": np.where(had_mi, prior["heart_failure_after_mi"], 1.0),
        }
        for name, rate in rates.items():
            probability = hazards.monthly_probability(rate[:, m] * frail * multiplier.get(name, 1.0))
            used[name][:, m] = probability
            found[name].append(np.flatnonzero(rng.random(n) < probability))
        death_hazard[:, m] = hazards.monthly_probability(
            death_base[:, m] * np.where(had_ascvd, prior["death_after_event"], 1.0)
        )
        now = found["ascvd"][-1]
        had_ascvd[now] = True
        had_mi[now[rng.random(len(now)) >= stroke_share]] = True
    events = {}
    for name, parts in found.items():
        events[name] = (
            np.concatenate(parts),
            np.repeat(np.arange(n_months), [len(part) for part in parts]),
        )
    return events, used, death_hazard


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


__all__ = [
    "ADHERENCE_LABELS",
    "Course",
    "Visits",
    "first_event_month",
    "gompertz_per_year",
    "simulate_course",
]
