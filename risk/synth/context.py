"""Everything a block generator needs that is shared across blocks: parameters, calendar, geography."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from risk.synth.geography import Geography, build_geography

EPOCH = date(1970, 1, 1)


def to_day(value: date) -> int:
    return (value - EPOCH).days


@dataclass(frozen=True)
class Calendar:
    """Calendar months of the history; month m covers days [month_start[m], month_start[m+1])."""

    start_day: int
    end_day: int
    month_start: np.ndarray  # n_months + 1 entries, clipped to [start_day, end_day + 1]
    month_of_year: np.ndarray  # 0 = January
    year_of_month: np.ndarray

    @property
    def n_months(self) -> int:
        return len(self.month_of_year)

    @property
    def years(self) -> float:
        return (self.end_day - self.start_day + 1) / 365.25

    def month_index(self, days: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.month_start, days, side="right") - 1, 0, self.n_months - 1)

    def random_day_in_month(self, rng: np.random.Generator, months: np.ndarray) -> np.ndarray:
        first = self.month_start[months]
        length = self.month_start[months + 1] - first
        return first + (rng.random(len(months)) * length).astype(np.int64)


def build_calendar(start: date, end: date) -> Calendar:
    starts = np.arange(np.datetime64(start, "M"), np.datetime64(end, "M") + 1)
    days = starts.astype("datetime64[D]").astype(np.int64)
    start_day, end_day = to_day(start), to_day(end)
    month_start = np.append(np.maximum(days, start_day), end_day + 1)
    return Calendar(
        start_day=start_day,
        end_day=end_day,
        month_start=month_start,
        month_of_year=starts.astype(np.int64) % 12,
        year_of_month=starts.astype(np.int64) // 12 + 1970,
    )


def solve_scale(base: np.ndarray, shape: np.ndarray, target: float) -> float:
    """k such that sum(base * min(1, k * shape)) == target (bisection; registration calibration)."""
    low, high = 0.0, 1e3
    for _ in range(100):
        mid = (low + high) / 2
        if np.sum(base * np.minimum(1.0, mid * shape)) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class Context:
    params: dict
    calendar: Calendar
    geography: Geography
    seed: int
    persons_total: int
    home_bp_per_year: float
    dirty_share: float
    band_lower: np.ndarray = field(repr=False)
    band_share: np.ndarray = field(repr=False)
    registration_prob_htn: np.ndarray = field(repr=False)
    registration_prob_dm: np.ndarray = field(repr=False)
    general_admission_per_year: np.ndarray = field(repr=False)


def build_context(
    params: dict, start: date, end: date, seed: int, persons: int, home_bp_per_year: float, dirty_share: float
) -> Context:
    bands = params["age_bands"]
    share = np.asarray(bands["share"], dtype=float)
    share /= share.sum()
    prev = params["prevalence"]
    targets = params["targets"]
    shape = np.asarray(prev["registration_shape"], dtype=float)
    population = targets["resident_population"]
    reg_htn = []
    for condition, target in (
        ("hypertension", "hypertension_registered"),
        ("diabetes_t2", "diabetes_registered"),
    ):
        base = share * np.asarray(prev[condition], dtype=float)
        scale = solve_scale(base, shape, targets[target] / population)
        reg_htn.append(np.minimum(1.0, scale * shape))
    enc = params["encounters"]
    mult = np.asarray(enc["general_admission_age_mult"], dtype=float)
    general_rate = targets["admission_rate"] * (1 - enc["chronic_admission_share_estimate"])
    general = mult * general_rate / np.sum(share * mult)
    return Context(
        params=params,
        calendar=build_calendar(start, end),
        geography=build_geography(np.random.default_rng([seed, 10**9]), params["geography"]),
        seed=seed,
        persons_total=persons,
        home_bp_per_year=home_bp_per_year,
        dirty_share=dirty_share,
        band_lower=np.asarray(bands["lower"], dtype=float),
        band_share=share,
        registration_prob_htn=reg_htn[0],
        registration_prob_dm=reg_htn[1],
        general_admission_per_year=general,
    )
