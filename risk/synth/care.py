"""Care records of one block: follow-ups with their measurements, screening, labs, prescriptions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.synth.columns import NULL_DAY, Cat, Table, concat_tables
from risk.synth.context import Context
from risk.synth.population import DAYS_PER_YEAR, Residents
from risk.synth.trajectories import ADHERENCE_LABELS, Course, Visits

SECONDS_PER_DAY = 86400
DANGER_SYMPTOMS = ["剧烈头痛", "视物模糊", "胸痛", "呼吸困难", "意识改变", "恶心呕吐"]
VITAL_SOURCES = ["follow_up", "clinic", "home", "hospital", "screening", "other"]
MODES = ["clinic", "home", "phone"]
CONDITIONS = ["hypertension", "diabetes_t2"]


@dataclass
class Life:
    """Per-resident end of observation within the county."""

    death_day: np.ndarray  # NULL_DAY when alive at the end
    moved_day: np.ndarray  # NULL_DAY when not moved
    last_day: np.ndarray  # last day with data in the county
    active: np.ndarray  # (patients, months) alive and in the county for the whole month


@dataclass
class Lipids:
    tc: np.ndarray
    hdl: np.ndarray
    ldl: np.ndarray
    egfr: np.ndarray
    uacr: np.ndarray
    height: np.ndarray
    weight: np.ndarray
    waist: np.ndarray  # true waist circumference (cm); readings add measurement error


def person_measures(rng: np.random.Generator, res: Residents, statin: np.ndarray) -> Lipids:
    n = len(res)
    age = res.age0
    ckd = res.other[:, res.other_codes.index("ckd")]
    tc = np.clip(rng.normal(4.6 + 0.012 * (age - 50), 0.9, size=n), 2.2, 9.5)
    hdl = np.clip(rng.normal(1.40 - 0.15 * res.male, 0.3, size=n), 0.5, 2.8)
    ldl = np.clip((tc - hdl - 0.6 + rng.normal(0, 0.2, size=n)) * np.where(statin, 0.7, 1.0), 0.6, 7.0)
    egfr = np.clip(105 - 0.8 * np.maximum(age - 40, 0) - 30 * ckd + rng.normal(0, 10, size=n), 5, 135)
    uacr = rng.lognormal(np.log(12) + 1.0 * res.dm + 1.2 * ckd, 0.9)
    height = rng.normal(np.where(res.male, 167.0, 156.0), 6.0)
    bmi = np.clip(rng.normal(24.0 + 1.0 * (res.htn | res.dm), 3.2, size=n), 16, 40)
    # Waist tracks BMI (about 2.9 cm per kg/m2 in Chinese adults), with individual scatter.
    waist = np.clip(2.9 * bmi + 12 + rng.normal(0, 5, n), 55, 140)
    return Lipids(tc, hdl, ldl, egfr, uacr, height, bmi * (height / 100) ** 2, waist)


def timestamps(rng: np.random.Generator, days: np.ndarray, first_hour: int, last_hour: int) -> np.ndarray:
    seconds = rng.integers(first_hour * 3600, last_hour * 3600, size=len(days))
    return days.astype(np.int64) * SECONDS_PER_DAY + (seconds // 60) * 60


def observe_bp(
    rng: np.random.Generator,
    ctx: Context,
    true_sbp: np.ndarray,
    true_dbp: np.ndarray,
    offset: float = 0.0,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Readings of true BP: measurement error (pre-drawn `noise` when the doctor already acted on it),
    terminal-digit preference."""
    bp = ctx.params["blood_pressure"]
    n = len(true_sbp)
    if noise is None:
        noise = (
            rng.normal(0, bp["measurement_sd_sbp"], size=n),
            rng.normal(0, bp["measurement_sd_dbp"], size=n),
        )
    sbp = true_sbp + offset + noise[0]
    dbp = true_dbp + offset / 2 + noise[1]
    tens = rng.random(n) < bp["rounding_to_ten_share"]
    sbp = np.where(tens, np.round(sbp, -1), np.round(sbp))
    dbp = np.where(tens, np.round(dbp, -1), np.round(dbp))
    return np.clip(sbp, 70, 260), np.clip(np.minimum(dbp, sbp - 10), 40, 150)


def vitals_rows(
    rng: np.random.Generator,
    person: np.ndarray,
    measured_at: np.ndarray,
    sbp: np.ndarray,
    dbp: np.ndarray,
    source: str,
    body: Lipids | None = None,
    resident: np.ndarray | None = None,
    body_share: tuple[float, float] = (0.0, 0.0),
) -> Table:
    n = len(person)
    weight = np.full(n, np.nan)
    height = np.full(n, np.nan)
    waist = np.full(n, np.nan)
    if body is not None and resident is not None:
        has_weight = rng.random(n) < body_share[0]
        weight = np.where(has_weight, np.round(body.weight[resident] + rng.normal(0, 1.0, size=n), 1), np.nan)
        height = np.where(has_weight & (rng.random(n) < 0.2), np.round(body.height[resident]), np.nan)
        waist_cm = np.clip(body.waist[resident] + rng.normal(0, 2, n), 55, 140)
        waist = np.where(rng.random(n) < body_share[1], np.round(waist_cm), np.nan)
    heart_rate = np.where(rng.random(n) < 0.6, np.round(rng.normal(76, 10, size=n)), np.nan)
    return {
        "person_id": person,
        "measured_at": measured_at,
        "sbp": sbp,
        "dbp": dbp,
        "heart_rate": heart_rate,
        "weight_kg": weight,
        "height_cm": height,
        "waist_cm": waist,
        "source": Cat(np.full(n, VITAL_SOURCES.index(source), dtype=np.int32), VITAL_SOURCES),
    }


def lab_rows(
    person: np.ndarray,
    measured_at: np.ndarray,
    test: str,
    value: np.ndarray,
    unit: str | np.ndarray,
    units: list[str] | None = None,
) -> Table:
    n = len(person)
    if isinstance(unit, str):
        unit_col = Cat(np.zeros(n, dtype=np.int32), [unit])
    else:
        unit_col = Cat(unit.astype(np.int32), list(units or []))
    return {
        "person_id": person,
        "measured_at": measured_at,
        "test": Cat(np.zeros(n, dtype=np.int32), [test]),
        "value": value,
        "unit": unit_col,
    }


def glucose_labs(
    rng: np.random.Generator, ctx: Context, person: np.ndarray, measured_at: np.ndarray, true_fpg: np.ndarray
) -> Table:
    """FPG in mmol/L; a small share in mg/dL (valid mixed units that validation must convert)."""
    gl = ctx.params["glucose"]
    value = np.clip(true_fpg * rng.lognormal(0.0, gl["measurement_cv"], size=len(person)), 2.5, 33.0)
    mg = rng.random(len(person)) < gl["mg_dl_share"]
    value = np.where(mg, np.round(value / 0.0555062), np.round(value, 1))
    return lab_rows(person, measured_at, "fpg", value, mg.astype(np.int32), ["mmol/L", "mg/dL"])


def schedule_visits(ctx: Context, rng: np.random.Generator, res: Residents, res_idx: np.ndarray) -> Visits:
    """Planned follow-up visits of registered patients: one per calendar quarter (national cadence) for
    patients in care, fewer for the lost-to-follow-up share, on a day weighted by month (Spring Festival)."""
    fu = ctx.params["follow_up"]
    cal = ctx.calendar
    registered = res.reg_htn[res_idx] | res.reg_dm[res_idx]
    managed = np.flatnonzero(registered)
    big = np.iinfo(np.int64).max
    enrol = np.minimum(
        np.where(res.reg_htn[res_idx], res.enrol_htn[res_idx], big),
        np.where(res.reg_dm[res_idx], res.enrol_dm[res_idx], big),
    )
    first_day = np.maximum(enrol, cal.start_day)
    lost = rng.random(len(res_idx)) < fu["lost_to_follow_up_share"]
    attendance = np.where(
        lost,
        rng.beta(fu["lost_attendance_alpha"], fu["lost_attendance_beta"], size=len(res_idx)),
        fu["quarter_attendance"],
    )
    quarter = cal.year_of_month * 4 + cal.month_of_year // 3
    quarter -= quarter[0]
    month_weight = np.asarray(fu["month_weight"])[cal.month_of_year]
    per_quarter = fu["visits_per_year"] / 4
    visit_p, visit_day = [], []
    for q in range(quarter[-1] + 1):
        months = np.flatnonzero(quarter == q)
        w = month_weight[months]
        attend = managed[rng.random(len(managed)) < attendance[managed] * per_quarter]
        extra = managed[~lost[managed] & (rng.random(len(managed)) < fu["extra_visit_per_quarter"])]
        who = np.concatenate([attend, extra])
        month = months[rng.choice(len(months), size=len(who), p=w / w.sum())]
        visit_p.append(who)
        visit_day.append(cal.random_day_in_month(rng, month))
    vp = np.concatenate(visit_p)
    vday = np.concatenate(visit_day)
    keep = vday >= first_day[vp]
    vp, vday = vp[keep], vday[keep]
    bp, gl = ctx.params["blood_pressure"], ctx.params["glucose"]
    mode_share = fu["mode_share"]
    n = len(vp)
    return Visits(
        patient=vp,
        day=vday,
        mode=rng.choice(3, size=n, p=[mode_share[m] for m in MODES]),
        sbp_noise=rng.normal(0, bp["measurement_sd_sbp"], size=n),
        dbp_noise=rng.normal(0, bp["measurement_sd_dbp"], size=n),
        fpg_factor=rng.lognormal(0.0, gl["measurement_cv"], size=n),
    )


def follow_up_care(
    ctx: Context, rng: np.random.Generator, res: Residents, course: Course, life: Life, body: Lipids
) -> dict[str, list[Table]]:
    """The scheduled follow-up visits (course.visits) while alive and in the county, rechecks after
    uncontrolled readings, and their records."""
    p = ctx.params
    fu = p["follow_up"]
    cal = ctx.calendar
    res_idx = course.idx
    reg_htn = res.reg_htn[res_idx] & (res.enrol_htn[res_idx] <= life.last_day[res_idx])
    reg_dm = res.reg_dm[res_idx] & (res.enrol_dm[res_idx] <= life.last_day[res_idx])
    managed = np.flatnonzero(reg_htn | reg_dm)
    enrol = np.minimum(
        np.where(reg_htn, res.enrol_htn[res_idx], np.iinfo(np.int64).max),
        np.where(reg_dm, res.enrol_dm[res_idx], np.iinfo(np.int64).max),
    )
    first_day = np.maximum(enrol, cal.start_day)
    last_day = life.last_day[res_idx]
    visits = course.visits
    keep = (visits.day <= last_day[visits.patient]) & (reg_htn | reg_dm)[visits.patient]
    vp, vday, mode = visits.patient[keep], visits.day[keep], visits.mode[keep]
    month = cal.month_index(vday)
    sbp, dbp = observe_bp(
        rng,
        ctx,
        course.sbp[vp, month],
        course.dbp[vp, month],
        noise=(visits.sbp_noise[keep], visits.dbp_noise[keep]),
    )
    fpg = np.round(np.clip(course.fpg[vp, month] * visits.fpg_factor[keep], 2.5, 33.0), 1)
    uncontrolled = (mode != 2) & (((sbp >= 140) | (dbp >= 90)) & reg_htn[vp] | (fpg >= 7.0) & reg_dm[vp])
    recheck = uncontrolled & (rng.random(len(vp)) < fu["recheck_after_uncontrolled"])
    r_p = vp[recheck]
    r_day = vday[recheck] + rng.integers(10, 19, size=len(r_p))
    ok = r_day <= last_day[r_p]
    r_p, r_day = r_p[ok], r_day[ok]
    r_sbp, r_dbp, r_fpg = _readings(ctx, rng, course, r_p, r_day)
    vp = np.concatenate([vp, r_p])
    vday = np.concatenate([vday, r_day])
    mode = np.concatenate([mode, np.zeros(len(r_p), dtype=mode.dtype)])
    sbp, dbp, fpg = (np.concatenate([a, b]) for a, b in ((sbp, r_sbp), (dbp, r_dbp), (fpg, r_fpg)))

    # A recheck can fall on the next quarter's visit day: one visit per patient and day.
    _, first_of_day = np.unique(vp.astype(np.int64) * 1_000_000 + vday, return_index=True)
    first_of_day = np.sort(first_of_day)
    vp, vday, mode, sbp, dbp, fpg = (a[first_of_day] for a in (vp, vday, mode, sbp, dbp, fpg))

    month = cal.month_index(vday)
    person = res.person[res_idx[vp]]
    true_sbp = course.sbp[vp, month]
    symptoms = np.where(
        rng.random(len(vp)) < np.where(true_sbp >= 175, 0.3, 0.01),
        rng.integers(0, len(DANGER_SYMPTOMS), size=len(vp)),
        -1,
    )
    measured = mode != 2
    referred = (((sbp >= 180) | (dbp >= 110) | (fpg >= 16.7)) & measured | (symptoms >= 0)) & (
        rng.random(len(vp)) < 0.7
    )
    referred |= rng.random(len(vp)) < 0.02
    adverse = rng.random(len(vp)) < fu["adverse_reaction"]
    adherence = course.adherence[vp, month].astype(np.int32)
    smoker = res.smoker[res_idx[vp]]
    symptom_labels = ["", *DANGER_SYMPTOMS]

    follow_ups: list[Table] = []
    for code, registered, enrol_days in ((0, reg_htn, res.enrol_htn), (1, reg_dm, res.enrol_dm)):
        rows = np.flatnonzero(registered[vp] & (vday >= enrol_days[res_idx[vp]]))
        follow_ups.append(
            {
                "person_id": person[rows],
                "followed_on": vday[rows],
                "condition": Cat(np.full(len(rows), code, dtype=np.int32), CONDITIONS),
                "mode": Cat(mode[rows].astype(np.int32), MODES),
                "smoker": smoker[rows].astype(np.int8),
                "adherence": Cat(adherence[rows], ADHERENCE_LABELS),
                "symptoms": Cat(symptoms[rows].astype(np.int32) + 1, symptom_labels),
                "adverse_reaction": adverse[rows].astype(np.int8),
                "referred": referred[rows].astype(np.int8),
            }
        )

    at = timestamps(rng, vday, 8, 17)
    m_rows = np.flatnonzero(measured)
    vitals = [
        vitals_rows(
            rng,
            person[m_rows],
            at[m_rows],
            sbp[m_rows],
            dbp[m_rows],
            "follow_up",
            body,
            res_idx[vp[m_rows]],
            (fu["weight_share"], fu["waist_share"]),
        )
    ]
    g_rows = np.flatnonzero(measured & reg_dm[vp] & (vday >= res.enrol_dm[res_idx[vp]]))
    labs = [glucose_labs(rng, ctx, person[g_rows], at[g_rows] + 120, fpg[g_rows] - 0.0)]
    labs += _periodic_labs(ctx, rng, res, course, body, managed, reg_dm, first_day, last_day)
    return {"follow_ups": follow_ups, "vitals": vitals, "labs": labs}


def _readings(ctx: Context, rng: np.random.Generator, course: Course, vp: np.ndarray, vday: np.ndarray):
    month = ctx.calendar.month_index(vday)
    sbp, dbp = observe_bp(rng, ctx, course.sbp[vp, month], course.dbp[vp, month])
    fpg = course.fpg[vp, month] * rng.lognormal(0.0, ctx.params["glucose"]["measurement_cv"], size=len(vp))
    return sbp, dbp, np.round(np.clip(fpg, 2.5, 33.0), 1)


def _poisson_days(
    rng: np.random.Generator, who: np.ndarray, first_day: np.ndarray, last_day: np.ndarray, per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    span = np.maximum(last_day[who] - first_day[who] + 1, 0)
    counts = rng.poisson(per_year * span / DAYS_PER_YEAR)
    rows = np.repeat(who, counts)
    days = first_day[rows] + (rng.random(len(rows)) * np.repeat(span, counts)).astype(np.int64)
    return rows, days


def _periodic_labs(
    ctx: Context,
    rng: np.random.Generator,
    res: Residents,
    course: Course,
    body: Lipids,
    managed: np.ndarray,
    reg_dm: np.ndarray,
    first_day: np.ndarray,
    last_day: np.ndarray,
) -> list[Table]:
    fu = ctx.params["follow_up"]
    cal = ctx.calendar
    res_idx = course.idx
    out: list[Table] = []
    rows, days = _poisson_days(rng, managed[reg_dm[managed]], first_day, last_day, fu["hba1c_per_year"])
    hba1c = (course.fpg[rows, cal.month_index(days)] + 2.59) / 1.59 + rng.normal(0, 0.3, size=len(rows))
    ifcc = rng.random(len(rows)) < ctx.params["glucose"]["hba1c_mmol_mol_share"]
    value = np.where(ifcc, np.round((hba1c - 2.152) / 0.09148), np.round(np.clip(hba1c, 4.0, 18.0), 1))
    out.append(
        lab_rows(
            res.person[res_idx[rows]],
            timestamps(rng, days, 8, 11),
            "hba1c",
            value,
            ifcc.astype(np.int32),
            ["%", "mmol/mol"],
        )
    )
    rows, days = _poisson_days(rng, managed, first_day, last_day, fu["lipids_per_year"])
    out += lipid_labs(rng, res.person[res_idx[rows]], timestamps(rng, days, 8, 11), body, res_idx[rows])
    rows, days = _poisson_days(rng, managed, first_day, last_day, fu["kidney_per_year"])
    who = res_idx[rows]
    at = timestamps(rng, days, 8, 11)
    out.append(
        lab_rows(
            res.person[who],
            at,
            "egfr",
            np.round(np.clip(course.egfr[rows, cal.month_index(days)] + rng.normal(0, 5, len(who)), 3, 150)),
            "mL/min/1.73m2",
        )
    )
    out.append(
        lab_rows(
            res.person[who],
            at + 60,
            "uacr",
            np.round(body.uacr[who] * rng.lognormal(0, 0.3, len(who)), 1),
            "mg/g",
        )
    )
    return out


def lipid_labs(
    rng: np.random.Generator, person: np.ndarray, at: np.ndarray, body: Lipids, who: np.ndarray
) -> list[Table]:
    n = len(who)
    return [
        lab_rows(person, at + k, test, np.round(values[who] * rng.lognormal(0, 0.05, n), 2), "mmol/L")
        for k, (test, values) in enumerate((("tc", body.tc), ("hdl_c", body.hdl), ("ldl_c", body.ldl)))
    ]


def screening_care(
    ctx: Context, rng: np.random.Generator, res: Residents, course: Course, life: Life, body: Lipids
) -> dict[str, list[Table]]:
    """Annual elderly health checks for everyone >= 65, and the raised readings of unregistered patients."""
    cal = ctx.calendar
    p = ctx.params
    n = len(res)
    patient_of = np.full(n, -1)
    patient_of[course.idx] = np.arange(len(course.idx))
    bp = p["blood_pressure"]
    person_sbp = np.clip(
        rng.normal(bp["non_hypertensive_sbp_mean"] + 0.3 * (res.age0 - 60), bp["non_hypertensive_sbp_sd"]),
        95,
        136,
    )
    person_dbp = bp["dbp_from_sbp"] * person_sbp + rng.normal(bp["dbp_intercept"], bp["dbp_sd"], size=n)
    person_fpg = np.clip(rng.normal(p["glucose"]["non_diabetic_fpg_mean"], 0.5, size=n), 3.9, 6.9)

    who_parts, day_parts = [], []
    for year in np.unique(cal.year_of_month):
        months = np.flatnonzero((cal.year_of_month == year) & np.isin(cal.month_of_year, [2, 3, 4, 5]))
        if len(months) == 0:
            continue
        age = res.age0 + (year - cal.year_of_month[0])
        who = np.flatnonzero((age >= 65) & (rng.random(n) < p["follow_up"]["elderly_health_check"]))
        day = cal.random_day_in_month(rng, rng.choice(months, size=len(who)))
        ok = day <= life.last_day[who]
        who_parts.append(who[ok])
        day_parts.append(day[ok])
    # Unregistered patients who were screened: 2-3 readings on different days across the history.
    unreg = course.idx[course.unreg_screened]
    counts = rng.integers(2, 4, size=len(unreg))
    who = np.repeat(unreg, counts)
    day = cal.start_day + (rng.random(len(who)) * (life.last_day[who] - cal.start_day + 1)).astype(np.int64)
    ok = day >= cal.start_day
    who_parts.append(who[ok])
    day_parts.append(day[ok])
    n_check = sum(len(w) for w in who_parts[:-1])
    who = np.concatenate(who_parts)
    day = np.concatenate(day_parts)
    check = np.arange(len(who)) < n_check

    month = cal.month_index(day)
    pat = patient_of[who]
    is_pat = pat >= 0
    true_sbp = np.where(is_pat, course.sbp[np.maximum(pat, 0), month], person_sbp[who])
    true_dbp = np.where(is_pat, course.dbp[np.maximum(pat, 0), month], person_dbp[who])
    true_fpg = np.where(is_pat, course.fpg[np.maximum(pat, 0), month], person_fpg[who])
    sbp, dbp = observe_bp(rng, ctx, true_sbp, true_dbp)
    at = timestamps(rng, day, 8, 16)
    person = res.person[who]
    source = np.where(
        check | (rng.random(len(who)) < 0.5), VITAL_SOURCES.index("screening"), VITAL_SOURCES.index("clinic")
    )
    vit = vitals_rows(rng, person, at, sbp, dbp, "screening", body, who, (0.8, 0.5))
    vit["source"] = Cat(source.astype(np.int32), VITAL_SOURCES)
    gl_rows = np.flatnonzero(check | res.dm[who])
    labs = [glucose_labs(rng, ctx, person[gl_rows], at[gl_rows] + 300, true_fpg[gl_rows])]
    lip = np.flatnonzero(check & (rng.random(len(who)) < 0.5))
    labs += lipid_labs(rng, person[lip], at[lip] + 400, body, who[lip])
    return {"vitals": [vit], "labs": labs}


def home_readings(
    ctx: Context, rng: np.random.Generator, res: Residents, course: Course, life: Life
) -> Table:
    """Stress mode: self-measured home readings of registered hypertensive patients."""
    cal = ctx.calendar
    reg = res.reg_htn[course.idx]
    enrol_month = cal.month_index(res.enrol_htn[course.idx])
    allowed = life.active & reg[:, None] & (np.arange(cal.n_months)[None, :] >= enrol_month[:, None])
    counts = np.where(allowed, rng.poisson(ctx.home_bp_per_year / 12, size=allowed.shape), 0)
    flat = np.repeat(np.arange(counts.size), counts.ravel())
    pat, month = np.divmod(flat, cal.n_months)
    day = cal.random_day_in_month(rng, month)
    sbp, dbp = observe_bp(
        rng,
        ctx,
        course.sbp[pat, month],
        course.dbp[pat, month],
        ctx.params["blood_pressure"]["home_offset_sbp"],
    )
    return vitals_rows(rng, res.person[course.idx[pat]], timestamps(rng, day, 6, 22), sbp, dbp, "home")


def prescriptions(
    ctx: Context,
    rng: np.random.Generator,
    res: Residents,
    course: Course,
    life: Life,
    statin: np.ndarray,
    aspirin: np.ndarray,
) -> Table:
    drugs = ctx.params["drugs"]
    cal = ctx.calendar
    n, n_months = course.sbp.shape
    day = cal.month_start[:-1][None, :] + (
        rng.random((n, n_months)) * np.diff(cal.month_start)[None, :]
    ).astype(np.int64)
    names: list[str] = []
    atcs: list[str] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(mask: np.ndarray, product: np.ndarray) -> None:
        pat, month = np.nonzero(mask & life.active)
        parts.append((pat, day[pat, month], product[pat]))

    for group, dispensed, n_drugs, chosen in (
        ("antihypertensive", course.dispense_htn, course.n_drugs_htn, course.products_htn),
        ("antidiabetic", course.dispense_dm, course.n_drugs_dm, course.products_dm),
    ):
        products = drugs[group]
        offset = len(atcs)
        atcs += [d["atc"] for d in products]
        names += [d["name"] for d in products]
        # Distinct products per patient (chosen in the course); a step-up adds the next slot's product.
        for j in range(chosen.shape[1]):
            add(dispensed & (n_drugs > j), chosen[:, j] + offset)
    any_dispense = course.dispense_htn | course.dispense_dm
    for key, flag in (("statin", statin), ("antiplatelet", aspirin)):
        atcs.append(drugs[key]["atc"])
        names.append(drugs[key]["name"])
        add(any_dispense & flag[course.idx][:, None], np.full(n, len(atcs) - 1))
    pat = np.concatenate([x[0] for x in parts])
    supply_options = drugs["days_supply"]
    supply_days = np.array(list(supply_options), dtype=np.int32)
    supply_p = np.array(list(supply_options.values()), dtype=float)
    product = np.concatenate([x[2] for x in parts]).astype(np.int32)
    return {
        "person_id": res.person[course.idx[pat]],
        "dispensed_on": np.concatenate([x[1] for x in parts]),
        "atc_code": Cat(product, atcs),
        "days_supply": rng.choice(supply_days, size=len(pat), p=supply_p / supply_p.sum()),
        "drug_name": Cat(product, names),
    }


def combine(groups: list[dict[str, list[Table]]]) -> dict[str, Table]:
    names = {name for g in groups for name in g}
    return {name: concat_tables([t for g in groups for t in g.get(name, [])]) for name in names}


__all__ = [
    "NULL_DAY",
    "Life",
    "combine",
    "follow_up_care",
    "home_readings",
    "person_measures",
    "prescriptions",
    "screening_care",
]
