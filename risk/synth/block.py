"""One block of residents, generated end to end with its own random stream.

Blocks have a fixed size and a stream seeded by (seed, block number), so the output depends only on the
seed and the number of persons, never on how blocks are grouped for writing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from risk.synth import care
from risk.synth.columns import EVENT_DATE_COLUMN, NULL_DAY, Cat, Table, take_rows
from risk.synth.context import Context
from risk.synth.encounters import build_claims, claims_table
from risk.synth.ids import chinese_names, national_ids, phone_numbers
from risk.synth.population import Residents, make_residents
from risk.synth.trajectories import (
    ADHERENCE_LABELS,
    Course,
    first_event_month,
    gompertz_per_year,
    simulate_course,
)

BLOCK_SIZE = 50_000


@dataclass
class Block:
    first_person: int
    residents: Residents
    tables: dict[str, Table]
    truth: Table


def generate_block(ctx: Context, block_number: int, first: int, n: int) -> Block:
    rng = np.random.default_rng([ctx.seed, block_number])
    res = make_residents(ctx, rng, first, n)
    statin_share = ctx.params["drugs"]["statin"]
    aspirin_share = ctx.params["drugs"]["antiplatelet"]
    cvd = res.has_cvd
    statin = rng.random(n) < np.where(cvd, statin_share["share_with_cvd"], statin_share["share"])
    aspirin = rng.random(n) < np.where(cvd, aspirin_share["share_with_cvd"], aspirin_share["share"])
    body = care.person_measures(rng, res, statin)
    course = simulate_course(ctx, rng, res, body, lambda idx: care.schedule_visits(ctx, rng, res, idx))
    life = _life(ctx, rng, res, course)

    groups = [
        care.follow_up_care(ctx, rng, res, course, life, body),
        care.screening_care(ctx, rng, res, course, life, body),
    ]
    if ctx.home_bp_per_year > 0:
        groups.append({"vitals": [care.home_readings(ctx, rng, res, course, life)]})
    tables = care.combine(groups)
    tables["prescriptions"] = care.prescriptions(ctx, rng, res, course, life, statin, aspirin)
    if not ctx.params["data_feeds"]["prescriptions"]:  # a county without a pharmacy feed
        tables["prescriptions"] = {}
    claims, outcomes = build_claims(ctx, rng, res, course, life)
    tables["encounters"] = claims_table(ctx, rng, res, claims, life)
    tables["conditions"] = _conditions(ctx, rng, res, life)
    for name, column in EVENT_DATE_COLUMN.items():
        if tables.get(name):  # a small block can have nobody with such records: the table is {}
            order = np.lexsort((tables[name][column], tables[name]["person_id"]))
            tables[name] = take_rows(tables[name], order)
        else:
            tables[name] = {}
    tables["persons"] = _persons(ctx, rng, res, life)
    truth = _truth(ctx, res, course, life, body, outcomes)
    return Block(first, res, tables, truth)


def _life(ctx: Context, rng: np.random.Generator, res: Residents, course: Course) -> care.Life:
    cal = ctx.calendar
    n, n_months = len(res), cal.n_months
    months = np.arange(n_months)
    death_month = np.full(n, n_months)
    others = np.setdiff1d(np.arange(n), course.idx)
    age = res.age0[others][:, None] + months[None, :] / 12
    hazard = -np.expm1(-gompertz_per_year(ctx.params["outcomes"], age) / 12).astype(np.float32)
    death_month[others] = first_event_month(rng, hazard)
    death_month[course.idx] = first_event_month(rng, course.death_hazard)

    registered = res.reg_htn | res.reg_dm
    enrol = np.minimum(np.where(res.reg_htn, res.enrol_htn, 2**40), np.where(res.reg_dm, res.enrol_dm, 2**40))
    enrol_month = np.where(enrol < cal.start_day, 0, cal.month_index(np.minimum(enrol, cal.end_day)))
    moved_after = rng.geometric(ctx.params["behaviour"]["moved_per_year"] / 12, size=n)
    moved_month = np.where(registered, enrol_month + moved_after, n_months)
    moved_month = np.where(moved_month < death_month, moved_month, n_months)

    def day_in(month: np.ndarray) -> np.ndarray:
        inside = month < n_months
        days = cal.random_day_in_month(rng, np.minimum(month, n_months - 1))
        return np.where(inside, days, NULL_DAY)

    death_day = day_in(death_month)
    moved_day = day_in(moved_month)
    moved_day = np.where(moved_day != NULL_DAY, np.maximum(moved_day, enrol + 1), NULL_DAY)
    last = np.full(n, cal.end_day, dtype=np.int64)
    last = np.where(death_day != NULL_DAY, np.minimum(last, death_day - 1), last)
    last = np.where(moved_day != NULL_DAY, np.minimum(last, moved_day - 1), last)
    stop = np.minimum(death_month, moved_month)[course.idx]
    active = months[None, :] < stop[:, None]
    return care.Life(death_day=death_day, moved_day=moved_day, last_day=last, active=active)


def _conditions(ctx: Context, rng: np.random.Generator, res: Residents, life: care.Life) -> Table:
    cal = ctx.calendar
    n = len(res)
    codes = ["hypertension", "diabetes_t2", *res.other_codes]
    person_parts, code_parts, enrol_parts = [], [], []
    for k, (registered, enrol) in enumerate(((res.reg_htn, res.enrol_htn), (res.reg_dm, res.enrol_dm))):
        who = np.flatnonzero(registered & (enrol <= life.last_day))
        person_parts.append(who)
        code_parts.append(np.full(len(who), k))
        enrol_parts.append(enrol[who])
    for j in range(len(res.other_codes)):
        who = np.flatnonzero(res.other_registered[:, j])
        enrol = (
            cal.start_day
            - rng.exponential(5 * 365, size=len(who)).astype(np.int64)
            + rng.integers(0, 3 * 365, size=len(who))
        )
        enrol = np.clip(enrol, res.birth_day[who] + 20 * 365, life.last_day[who])
        ok = enrol >= res.birth_day[who] + 20 * 365
        person_parts.append(who[ok])
        code_parts.append(np.full(ok.sum(), 2 + j))
        enrol_parts.append(enrol[ok])
    who = np.concatenate(person_parts)
    enrolled = np.concatenate(enrol_parts)
    diagnosed = np.maximum(
        enrolled - rng.exponential(300, size=len(who)).astype(np.int64), res.birth_day[who] + 18 * 365
    )
    missing = rng.random(len(who)) < ctx.params["prevalence"]["diagnosis_date_missing_share"]
    ended = np.where(life.moved_day[who] != NULL_DAY, life.moved_day[who], life.death_day[who])
    del n
    return {
        "person_id": res.person[who],
        "condition": Cat(np.concatenate(code_parts).astype(np.int32), codes),
        "diagnosed_on": np.where(missing, NULL_DAY, diagnosed),
        "enrolled_on": enrolled,
        "ended_on": ended,
    }


def _persons(ctx: Context, rng: np.random.Generator, res: Residents, life: care.Life) -> Table:
    geo = ctx.geography
    n = len(res)
    phone = phone_numbers(rng, n)
    phone = pa.array(phone.to_numpy(zero_copy_only=False), mask=rng.random(n) < 0.06)
    sequence = rng.integers(0, 500, size=n)
    return {
        "person_id": res.person,
        "sex": Cat(np.where(res.male, 0, 1).astype(np.int32), ["M", "F"]),
        "birth_date": res.birth_day,
        "township_id": Cat(geo.village_township[res.village].astype(np.int32), geo.township_ids),
        "village_id": Cat(res.village.astype(np.int32), geo.village_ids),
        "unit_id": Cat(geo.village_unit[res.village].astype(np.int32), geo.unit_ids),
        "team_id": Cat(geo.village_team[res.village].astype(np.int32), geo.team_ids),
        "signed_contract": res.signed,
        "phone": phone,
        "national_id": national_ids(
            ctx.params["geography"]["region_code"], res.birth_day, sequence, res.male
        ),
        "death_date": life.death_day,
        "name": chinese_names(rng, res.male, ctx.params["names"]),
        "urban": res.urban,
        "family_history_ascvd": res.family_history,
        "township_name": Cat(geo.village_township[res.village].astype(np.int32), geo.township_names),
        "unit_name": Cat(geo.village_unit[res.village].astype(np.int32), geo.unit_names),
        "village_name": Cat(res.village.astype(np.int32), geo.village_names),
    }


def _truth(
    ctx: Context, res: Residents, course: Course, life: care.Life, body: care.Lipids, outcomes
) -> Table:
    """Latent truth of every patient, for honest evaluation of risk models (never an input).

    hazard_<outcome>: the true annual hazard of each outcome over the final 12 months of history (frailty and
    prior events in); true_risk_final_year: probability of any modelled outcome (any outcome above or death)
    in those 12 months, the oracle's score for the latest complete label window; ..._no_frailty: the same with
    the unobserved frailty at its mean, the best any method using observable data could approach.
    """
    idx = course.idx
    active = life.active
    n_months = active.shape[1]
    months_active = np.maximum(active.sum(axis=1), 1)
    monthly = sum(course.rates.values())
    mean_monthly = np.where(active.any(axis=1), (monthly * active).sum(axis=1) / months_active, monthly[:, 0])
    last_month = np.maximum(active.sum(axis=1) - 1, 0)
    rows = np.arange(len(idx))
    final = slice(max(n_months - 12, 0), n_months)
    survive = np.ones(len(idx))
    for probability in [*course.rates.values(), course.death_hazard]:
        survive = survive * np.prod(1.0 - probability[:, final].astype(float), axis=1)
    frailty = course.frailty
    out = ctx.params["outcomes"]
    # Without frailty: outcome hazards scale with exp(frailty), death with exp(w * frailty); replace by means.
    sd = out["frailty_sd"]
    scale = np.exp(sd**2 / 2 - frailty)
    death_scale = np.exp((out["death_log_hr_frailty"] * sd) ** 2 / 2 - out["death_log_hr_frailty"] * frailty)
    survive_nf = np.ones(len(idx))
    for probability in course.rates.values():
        rate = -np.log1p(-probability[:, final].astype(float)) * scale[:, None]
        survive_nf = survive_nf * np.exp(-rate.sum(axis=1))
    death_rate = -np.log1p(-course.death_hazard[:, final].astype(float)) * death_scale[:, None]
    survive_nf = survive_nf * np.exp(-death_rate.sum(axis=1))
    hazard = {
        f"hazard_{name}": -12 * np.log1p(-probability[:, final].astype(float)).mean(axis=1)
        for name, probability in course.rates.items()
    }
    hazard["hazard_death"] = -12 * np.log1p(-course.death_hazard[:, final].astype(float)).mean(axis=1)
    return {
        "person_id": res.person[idx],
        "true_hypertension": res.htn[idx],
        "true_diabetes": res.dm[idx],
        "registered_hypertension": res.reg_htn[idx],
        "registered_diabetes": res.reg_dm[idx],
        "latent_risk": 12 * mean_monthly,
        "latent_risk_end": 12 * monthly[rows, last_month],
        "true_risk_final_year": 1.0 - survive,
        "true_risk_final_year_no_frailty": 1.0 - survive_nf,
        **hazard,
        "frailty": frailty,
        "sbp_untreated": course.sbp_untreated,
        "fpg_untreated": course.fpg_untreated,
        "sbp_true_end": course.sbp[rows, last_month],
        "fpg_true_end": course.fpg[rows, last_month],
        "egfr_true_end": course.egfr[rows, last_month],
        "uacr_true": body.uacr[idx],
        "tc_true": body.tc[idx],
        "hdl_true": body.hdl[idx],
        "waist_true": body.waist[idx],
        "adherence_class": Cat(course.adherence_class.astype(np.int32), ADHERENCE_LABELS),
        "n_antihypertensives": course.n_drugs_htn[rows, last_month].astype(np.int64),
        "n_antidiabetics": course.n_drugs_dm[rows, last_month].astype(np.int64),
        "intensified_htn": course.intensified_htn.astype(np.int64),
        "intensified_dm": course.intensified_dm.astype(np.int64),
        "unregistered_treated": course.unreg_treated,
        **{name: count for name, count in outcomes.counts.items()},
        "cv_admissions": outcomes.cv_admissions,
        "complications": outcomes.complications,
        "diabetes_admissions": outcomes.diabetes_admissions,
        "death_date": life.death_day[idx],
        "moved_on": life.moved_day[idx],
    }
