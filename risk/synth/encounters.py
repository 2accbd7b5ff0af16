"""Claims of one block: outpatient visits, admissions (general and risk-driven), emergencies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from risk.synth.care import Life
from risk.synth.columns import Cat, Table
from risk.synth.context import Context
from risk.synth.population import DAYS_PER_YEAR, Residents
from risk.synth.trajectories import Course

SETTINGS = ["outpatient", "inpatient", "emergency"]
LEVELS = ["village", "township", "county", "outside_county"]
COST_GROUP = {
    "E16.0": "diabetes",
    "N18.3": "kidney",
    "N18.4": "kidney",
    "I10": "hypertension",
    "I11.0": "hypertension",
    "I63.9": "stroke",
    "I61.9": "stroke",
    "I21.4": "coronary",
    "I20.0": "coronary",
    "I50.9": "heart_failure",
    "I48.9": "heart_failure",
}
LEVEL_COST = np.array([0.3, 0.6, 1.0, 2.2])


@dataclass
class Claims:
    labels: list[str] = field(default_factory=list)
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def code(self, label: str) -> int:
        if label not in self.labels:
            self.labels.append(label)
        return self.labels.index(label)

    def add(
        self,
        who: np.ndarray,
        setting: int,
        level: np.ndarray,
        day: np.ndarray,
        stay: np.ndarray,
        primary: np.ndarray,
        secondary: np.ndarray,
        cost: np.ndarray,
    ) -> None:
        self.parts.append(
            {
                "who": who,
                "setting": np.full(len(who), setting),
                "level": level,
                "day": day,
                "stay": stay,
                "primary": primary,
                "secondary": secondary,
                "cost": cost,
            }
        )


@dataclass
class Outcomes:
    """Risk-driven events per patient (counts) for the truth table."""

    cv_admissions: np.ndarray
    complications: np.ndarray
    diabetes_admissions: np.ndarray
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # events_<outcome> per patient


def _mix(rng: np.random.Generator, claims: Claims, mix: dict[str, float], n: int) -> np.ndarray:
    labels = list(mix)
    weights = np.array([mix[k] for k in labels], dtype=float)
    codes = np.array([claims.code(k) for k in labels])
    return codes[rng.choice(len(labels), size=n, p=weights / weights.sum())]


def _inpatient_level(rng: np.random.Generator, ctx: Context, n: int) -> np.ndarray:
    share = ctx.params["encounters"]["inpatient_level_share"]
    return rng.choice([1, 2, 3], size=n, p=[share["township"], share["county"], share["outside_county"]])


def _secondary(claims: Claims, res: Residents, who: np.ndarray) -> np.ndarray:
    labels = np.array([claims.code(""), claims.code("I10"), claims.code("E11.9"), claims.code("I10;E11.9")])
    return labels[res.htn[who].astype(int) + 2 * res.dm[who].astype(int)]


def build_claims(
    ctx: Context, rng: np.random.Generator, res: Residents, course: Course, life: Life
) -> tuple[Claims, Outcomes]:
    cal = ctx.calendar
    enc = ctx.params["encounters"]
    out = ctx.params["outcomes"]
    claims = Claims()
    claims.code("")
    n_pat = len(course.idx)

    codes = out["codes"]

    def events(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patient, resident, day) of an outcome's events while alive and in the county."""
        pat, month = course.events[name]
        kept = life.active[pat, month]
        pat, month = pat[kept], month[kept]
        return pat, course.idx[pat], cal.random_day_in_month(rng, month)

    def code_of(spec: str | dict[str, float], n: int) -> np.ndarray:
        if isinstance(spec, str):
            return np.full(n, claims.code(spec))
        return _mix(rng, claims, spec, n)

    def emergency(who: np.ndarray, day: np.ndarray, primary: np.ndarray) -> None:
        er = rng.random(len(who)) < enc["emergency_share_of_cv"]
        claims.add(
            who[er],
            2,
            np.full(er.sum(), 2),
            day[er],
            np.zeros(er.sum(), int),
            primary[er],
            _secondary(claims, res, who[er]),
            600.0 * rng.lognormal(0, 0.5, er.sum()),
        )

    def outpatient_dx(who: np.ndarray, day: np.ndarray, primary: np.ndarray) -> None:
        claims.add(
            who,
            0,
            np.full(len(who), 2),
            day,
            np.zeros(len(who), int),
            primary,
            _secondary(claims, res, who),
            350.0 * rng.lognormal(0, 0.5, len(who)),
        )

    event_counts: dict[str, np.ndarray] = {}
    cv_count = np.zeros(n_pat, dtype=np.int64)
    cx_count = np.zeros(n_pat, dtype=np.int64)
    dm_count = np.zeros(n_pat, dtype=np.int64)

    # ASCVD (China-PAR): stroke or coronary event; most admitted, some via the emergency room.
    pat, who, day = events("ascvd")
    stroke = rng.random(len(pat)) < out["ascvd"]["stroke_share"]
    bleed = rng.random(len(pat)) < out["ascvd"]["haemorrhagic_share_of_stroke"]
    primary = np.where(
        stroke,
        np.where(bleed, claims.code(codes["haemorrhagic_stroke"]), claims.code(codes["ischaemic_stroke"])),
        code_of(codes["coronary"], len(pat)),
    )
    admitted = rng.random(len(pat)) < out["ascvd"]["admitted_share"]
    _inpatient(ctx, rng, claims, res, who[admitted], day[admitted], primary[admitted])
    emergency(who, day, primary)
    event_counts["events_ascvd"] = np.bincount(pat, minlength=n_pat)
    cv_count += np.bincount(pat[admitted], minlength=n_pat)

    for name, code in (
        ("heart_failure", codes["heart_failure"]),
        ("hypertension_admission", codes["hypertension"]),
    ):
        pat, who, day = events(name)
        primary = code_of(code, len(pat))
        _inpatient(ctx, rng, claims, res, who, day, primary)
        emergency(who, day, primary)
        event_counts[f"events_{name}"] = np.bincount(pat, minlength=n_pat)
        cv_count += event_counts[f"events_{name}"]

    # Kidney progression (KDIGO grid) and diabetic microvascular complications (HbA1c): new diagnoses at
    # the county hospital, some during an admission.
    for name in ("kidney", "microvascular"):
        pat, who, day = events(name)
        if name == "kidney":
            month = cal.month_index(day)
            advanced = course.egfr[pat, month] < 30
            primary = np.where(advanced, claims.code(codes["kidney_advanced"]), claims.code(codes["kidney"]))
        else:
            primary = code_of(codes["microvascular"], len(pat))
        admitted = rng.random(len(pat)) < out[name]["admitted_share"]
        _inpatient(ctx, rng, claims, res, who[admitted], day[admitted], primary[admitted])
        outpatient_dx(who[~admitted], day[~admitted], primary[~admitted])
        event_counts[f"events_{name}"] = np.bincount(pat, minlength=n_pat)
        cx_count += event_counts[f"events_{name}"]

    # Hypoglycaemia on insulin / sulfonylureas, and other diabetes admissions.
    pat, who, day = events("hypoglycaemia")
    primary = code_of(codes["hypoglycaemia"], len(pat))
    _inpatient(ctx, rng, claims, res, who, day, primary)
    emergency(who, day, primary)
    event_counts["events_hypoglycaemia"] = np.bincount(pat, minlength=n_pat)
    dm_count += event_counts["events_hypoglycaemia"]
    pat, who, day = events("diabetes_admission")
    with_cx = rng.random(len(pat)) < out["diabetes_admission_complication_share"]
    primary = np.where(with_cx, code_of(codes["microvascular"], len(pat)), claims.code("E11.9"))
    _inpatient(ctx, rng, claims, res, who, day, primary)
    event_counts["events_diabetes_admission"] = np.bincount(pat, minlength=n_pat)
    dm_count += event_counts["events_diabetes_admission"]

    # General admissions of every resident, by age, while alive and in the county.
    span = np.maximum(life.last_day - cal.start_day + 1, 0)
    rate = ctx.general_admission_per_year[res.band]
    counts = rng.poisson(rate * span / DAYS_PER_YEAR)
    who = np.repeat(np.arange(len(res)), counts)
    day = cal.start_day + (rng.random(len(who)) * span[who]).astype(np.int64)
    primary = _mix(rng, claims, enc["general_admission_dx"], len(who))
    not_birth = ~(~res.male[who] & (res.age0[who] > 18) & (res.age0[who] < 42))
    primary = np.where((primary == claims.code("O80.0")) & not_birth, claims.code("J18.9"), primary)
    _inpatient(ctx, rng, claims, res, who, day, primary)

    # Outpatient claims: chronic-disease visits of registered patients, unregistered patients' claims,
    # and ordinary visits of everyone else.
    registered = res.reg_htn | res.reg_dm
    enrol = np.where(res.reg_htn, res.enrol_htn, res.enrol_dm)
    first = np.maximum(enrol, cal.start_day)
    per_year = np.where(registered, enc["outpatient_per_year_patient"], enc["outpatient_per_year_other"])
    first = np.where(registered, first, cal.start_day)
    span = np.maximum(life.last_day - first + 1, 0)
    counts = rng.poisson(per_year * span / DAYS_PER_YEAR)
    who = np.repeat(np.arange(len(res)), counts)
    day = first[who] + (rng.random(len(who)) * span[who]).astype(np.int64)
    chronic_dx = np.where(
        res.reg_htn[who] & (~res.reg_dm[who] | (rng.random(len(who)) < 0.5)),
        claims.code("I10"),
        claims.code("E11.9"),
    )
    other_dx = _mix(rng, claims, enc["outpatient_dx"], len(who))
    primary = np.where(registered[who], chronic_dx, other_dx)
    _outpatient(ctx, rng, claims, res, who, day, primary)
    unreg = course.idx[course.unreg_claims]
    span = np.maximum(life.last_day[unreg] - cal.start_day + 1, 0)
    counts = np.maximum(rng.poisson(1.0 * span / DAYS_PER_YEAR), (span > 0).astype(int))
    who = np.repeat(unreg, counts)
    day = cal.start_day + (rng.random(len(who)) * np.repeat(span, counts)).astype(np.int64)
    primary = np.where(
        res.htn[who] & (~res.dm[who] | (rng.random(len(who)) < 0.5)), claims.code("I10"), claims.code("E11.9")
    )
    _outpatient(ctx, rng, claims, res, who, day, primary)
    return claims, Outcomes(cv_count, cx_count, dm_count, event_counts)


def _inpatient(
    ctx: Context,
    rng: np.random.Generator,
    claims: Claims,
    res: Residents,
    who: np.ndarray,
    day: np.ndarray,
    primary: np.ndarray,
) -> None:
    enc = ctx.params["encounters"]
    level = _inpatient_level(rng, ctx, len(who))
    stay = np.maximum(1, rng.poisson(enc["length_of_stay_mean"] - 1, size=len(who)) + 1)
    medians = enc["inpatient_cost_median"]
    group_median = np.array([medians[_cost_group(label)] for label in claims.labels], dtype=float)
    cost = group_median[primary] * LEVEL_COST[level] * rng.lognormal(0, enc["cost_lognormal_sd"], len(who))
    claims.add(who, 1, level, day, stay, primary, _secondary(claims, res, who), cost)


def _outpatient(
    ctx: Context,
    rng: np.random.Generator,
    claims: Claims,
    res: Residents,
    who: np.ndarray,
    day: np.ndarray,
    primary: np.ndarray,
) -> None:
    enc = ctx.params["encounters"]
    level = np.where(rng.random(len(who)) < 0.7, 0, 1)
    cost = enc["outpatient_cost_median"] * rng.lognormal(0, 0.6, len(who)) * np.where(level == 0, 1.0, 1.6)
    secondary = np.full(len(who), claims.code(""))
    claims.add(who, 0, level, day, np.zeros(len(who), int), primary, secondary, cost)


def _cost_group(label: str) -> str:
    if label in COST_GROUP:
        return COST_GROUP[label]
    if label.startswith("E11"):
        return "diabetes"
    return "other"


def claims_table(ctx: Context, rng: np.random.Generator, res: Residents, claims: Claims, life: Life) -> Table:
    """Encounter rows; encounter ids are numbered later, after sorting."""
    parts = claims.parts
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = cat["day"] <= ctx.calendar.end_day
    cat = {k: v[keep] for k, v in cat.items()}
    who = cat["who"]
    low, high = ctx.params["encounters"]["fund_share_range"]
    fund_share = rng.uniform(low, high, size=len(who)) * np.where(cat["level"] == 3, 0.8, 1.0)
    total = np.round(cat["cost"], 2)
    discharged = cat["day"] + cat["stay"]
    # A stay that would end after death ends on the day of death.
    dead = life.death_day[who] != np.iinfo(np.int32).min
    discharged = np.where(dead, np.minimum(discharged, life.death_day[who]), discharged)
    labels = [lab if lab else "" for lab in claims.labels]
    secondary = Cat(
        np.where(cat["secondary"] == claims.code(""), -1, cat["secondary"]).astype(np.int32), labels
    )
    return {
        "encounter_id": np.zeros(len(who), dtype=np.int64),
        "person_id": res.person[who],
        "setting": Cat(cat["setting"].astype(np.int32), SETTINGS),
        "facility_level": Cat(cat["level"].astype(np.int32), LEVELS),
        "admitted_on": cat["day"],
        "discharged_on": discharged,
        "primary_dx": Cat(cat["primary"].astype(np.int32), labels),
        "secondary_dx": secondary,
        "total_cost": total,
        "fund_paid": np.round(total * fund_share, 2),
    }
