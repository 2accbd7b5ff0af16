"""Residents of one block: demographics, place, behaviour, true and registered chronic conditions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from risk.synth.context import Context

DAYS_PER_YEAR = 365.25


@dataclass
class Residents:
    person: np.ndarray  # global person number (P + 8 digits)
    male: np.ndarray
    age0: np.ndarray  # age in years on the first day of history
    band: np.ndarray
    birth_day: np.ndarray
    village: np.ndarray
    urban: np.ndarray
    family_history: np.ndarray
    smoker: np.ndarray
    htn: np.ndarray  # true condition
    dm: np.ndarray
    reg_htn: np.ndarray  # registered (under management) at some point of the history
    reg_dm: np.ndarray
    enrol_htn: np.ndarray  # day enrolled (meaningless where not registered)
    enrol_dm: np.ndarray
    other: np.ndarray  # (n, k) true other chronic conditions
    other_registered: np.ndarray
    other_codes: list[str]
    other_cardiovascular: np.ndarray
    signed: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    @property
    def comorbidity(self) -> np.ndarray:
        return self.other.sum(axis=1) + (self.htn & self.dm)

    @property
    def has_cvd(self) -> np.ndarray:
        return (self.other & self.other_cardiovascular).any(axis=1)


def make_residents(ctx: Context, rng: np.random.Generator, first: int, n: int) -> Residents:
    p = ctx.params
    cal = ctx.calendar
    bands = p["age_bands"]
    band = rng.choice(len(ctx.band_share), size=n, p=ctx.band_share)
    width = np.diff(np.append(ctx.band_lower, bands["max_age"] + 1))
    # Within the open top band ages thin out; within 5-year bands they are near uniform.
    within = np.where(band == len(width) - 1, rng.beta(1.0, 2.5, size=n), rng.random(n))
    age0 = ctx.band_lower[band] + within * width[band]
    male = rng.random(n) < np.asarray(bands["male_share"])[band]
    birth_day = cal.start_day - np.floor(age0 * DAYS_PER_YEAR).astype(np.int64)

    geo = ctx.geography
    village = rng.choice(geo.n_villages, size=n, p=geo.weight)
    urban = rng.random(n) < geo.urban_share[village]
    beh = p["behaviour"]
    smoker = rng.random(n) < np.where(male, beh["smoking_male"], beh["smoking_female"])
    smoker &= age0 >= 15
    family_history = rng.random(n) < beh["family_history_ascvd"]

    prev = p["prevalence"]
    rho = prev["copula_rho"]
    z1 = rng.standard_normal(n)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    htn = ndtr(z1) < np.asarray(prev["hypertension"])[band]
    dm = ndtr(z2) < np.asarray(prev["diabetes_t2"])[band]
    # registration_prob_* is P(registered | true condition, age band), calibrated in build_context.
    reg_htn = htn & (rng.random(n) < ctx.registration_prob_htn[band])
    reg_dm = dm & (rng.random(n) < ctx.registration_prob_dm[band])
    enrol_htn = _enrolment_days(ctx, rng, birth_day)
    enrol_dm = _enrolment_days(ctx, rng, birth_day)

    others = p["other_conditions"]
    codes = list(others)
    other = np.zeros((n, len(codes)), dtype=bool)
    registered = np.zeros_like(other)
    adult = age0 >= 30
    for j, code in enumerate(codes):
        spec = others[code]
        odds60 = spec["p60"] / (1 - spec["p60"])
        odds = (
            odds60
            * spec["per_decade"] ** ((age0 - 60) / 10)
            * np.where(spec["cardiovascular"] & (htn | dm), 1.8, 1.0)
        )
        other[:, j] = adult & (rng.random(n) < odds / (1 + odds))
        registered[:, j] = other[:, j] & (rng.random(n) < spec["registered"])
    cardiovascular = np.array([others[c]["cardiovascular"] for c in codes], dtype=bool)

    chronic = reg_htn | reg_dm | registered.any(axis=1)
    sign_other = np.where(age0 >= 65, beh["non_chronic_signing_elderly"], beh["non_chronic_signing_other"])
    signed = rng.random(n) < np.where(chronic, p["targets"]["signing_rate_chronic"], sign_other)
    return Residents(
        person=np.arange(first, first + n, dtype=np.int64) + 1,
        male=male,
        age0=age0,
        band=band,
        birth_day=birth_day,
        village=village,
        urban=urban,
        family_history=family_history,
        smoker=smoker,
        htn=htn,
        dm=dm,
        reg_htn=reg_htn,
        reg_dm=reg_dm,
        enrol_htn=enrol_htn,
        enrol_dm=enrol_dm,
        other=other,
        other_registered=registered,
        other_codes=codes,
        other_cardiovascular=cardiovascular,
        signed=signed,
    )


def _enrolment_days(ctx: Context, rng: np.random.Generator, birth_day: np.ndarray) -> np.ndarray:
    """Most patients were enrolled before the history starts, the rest during it (incident registration)."""
    cal = ctx.calendar
    prev = ctx.params["prevalence"]
    n = len(birth_day)
    earliest = int((np.datetime64(f"{prev['earliest_enrolment_year']}-01-01", "D")).astype(np.int64))
    lower = np.clip(birth_day + int(30 * DAYS_PER_YEAR), earliest, cal.start_day - 1)
    before = lower + (rng.random(n) * (cal.start_day - lower)).astype(np.int64)
    during = cal.start_day + (rng.random(n) * (cal.end_day - cal.start_day - 30)).astype(np.int64)
    return np.where(rng.random(n) < prev["enrolled_before_start_share"], before, during)
