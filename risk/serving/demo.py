"""A small, fast, seeded run folder in the nightly layout, for serving tests, the browser test and the load
benchmark (1M persons in well under a minute). Not a clinical simulation: `risk synth` + `risk nightly` is.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from risk.privacy import hash_national_id, mask_national_id
from risk.run.folder import CANONICAL, RunFolder
from risk.run.manifest import RunManifest

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国志文斌海燕淑")

REASONS = {
    "bp_emergency": ("red", "血压≥180/110，需紧急转诊", "BP at or above 180/110: emergency referral"),
    "bp_uncontrolled": ("yellow", "血压未控制（≥140/90）", "BP not controlled (at or above 140/90)"),
    "fpg_uncontrolled": ("yellow", "空腹血糖未控制（≥7.0）", "Fasting glucose not controlled (>= 7.0)"),
    "overdue": ("yellow", "随访逾期", "Follow-up overdue"),
    "controlled": ("green", "控制满意，常规季度随访", "Controlled: routine quarterly follow-up"),
}


def demo_national_id(index: int) -> str:
    """Clear synthetic national ID of demo person `index` (tests type it in; never written to disk)."""
    born = date(1940, 1, 1) + timedelta(days=(index // 1000) % 18_250)
    body = f"340621{born:%Y%m%d}{index % 1000:03d}"
    return body + "0123456789X"[index % 11]


def demo_person_id(index: int) -> str:
    return f"P{index:07d}"


def write_demo_run(
    run_dir: Path,
    *,
    persons: int = 200,
    seed: int = 20261125,
    as_of: date = date(2024, 12, 31),
    run_id: str | None = None,
    townships: int = 2,
    teams_per_township: int = 2,
    readings: int = 8,
) -> Path:
    """Write canonical/{persons,vitals,labs}.parquet, features.parquet, tiers.parquet and run.json."""
    rng = np.random.default_rng(seed)
    run = RunFolder(Path(run_dir))
    (run.path / CANONICAL).mkdir(parents=True, exist_ok=True)
    index = np.arange(persons)
    person_id = np.array([demo_person_id(i) for i in index], dtype=object)
    township_no = index % townships
    team_no = township_no * teams_per_township + (index // townships) % teams_per_township
    township_id = np.char.add("T", np.char.zfill(township_no.astype(str), 2))
    team_id = np.char.add("TEAM", np.char.zfill(team_no.astype(str), 3))
    sex = np.where(rng.random(persons) < 0.5, "M", "F")
    age = rng.uniform(35, 85, persons).round(1)
    birth = pd.Timestamp(as_of) - pd.to_timedelta((age * 365.25).astype(int), unit="D")
    names = (np.array(SURNAMES, dtype=object)[rng.integers(0, len(SURNAMES), persons)]
             + np.array(GIVEN, dtype=object)[rng.integers(0, len(GIVEN), persons)]
             + np.where(rng.random(persons) < 0.6,
                        np.array(GIVEN, dtype=object)[rng.integers(0, len(GIVEN), persons)], ""))
    phone = np.char.add("13", np.char.zfill(rng.integers(0, 10**9, persons).astype(str), 9))
    clear_ids = [demo_national_id(i) for i in range(persons)]
    pd.DataFrame({
        "person_id": person_id, "sex": sex, "birth_date": birth.date, "township_id": township_id,
        "village_id": np.char.add(team_id, "-V1"), "unit_id": np.char.add(team_id, "-U1"), "team_id": team_id,
        "signed_contract": rng.random(persons) < 0.7, "phone": phone, "name": names,
        "national_id_hash": [hash_national_id(x) for x in clear_ids],
        "national_id_masked": [mask_national_id(x) for x in clear_ids],
        "source_row": index + 1,
    }).to_parquet(run.table("persons"), index=False)

    has_htn = rng.random(persons) < 0.8
    has_dm = ~has_htn | (rng.random(persons) < 0.2)
    level = rng.normal(138, 16, persons)
    reading_person = np.repeat(index, readings)
    days_back = np.sort(rng.integers(0, 720, (persons, readings)), axis=1)[:, ::-1].ravel()
    measured_at = pd.Timestamp(as_of) + pd.Timedelta(hours=9) - pd.to_timedelta(days_back, unit="D")
    sbp = np.clip(level[reading_person] + rng.normal(0, 10, reading_person.size), 90, 230).round()
    dbp = np.clip(sbp * 0.6 + rng.normal(0, 6, reading_person.size), 50, 140).round()
    vitals = pd.DataFrame({"person_id": person_id[reading_person], "measured_at": measured_at,
                           "sbp": sbp, "dbp": dbp, "source": "follow_up"})
    vitals.to_parquet(run.table("vitals"), index=False)
    dm_rows = np.repeat(has_dm, readings)
    fpg = np.clip(rng.normal(7.2, 1.8, reading_person.size), 3.0, 25.0).round(1)
    labs = pd.DataFrame({"person_id": person_id[reading_person][dm_rows], "measured_at": measured_at[dm_rows],
                         "test": "fpg", "value": fpg[dm_rows], "unit": "mmol/L"})
    labs.to_parquet(run.table("labs"), index=False)

    last = np.arange(persons) * readings + readings - 1
    last_sbp, last_dbp, last_date = sbp[last], dbp[last], measured_at[last].date
    last_fpg = np.where(has_dm, fpg[last], np.nan)
    overdue = rng.integers(-60, 60, persons)
    reason_ids = np.select(
        [(last_sbp >= 180) | (last_dbp >= 110), (last_sbp >= 140) | (last_dbp >= 90),
         has_dm & (last_fpg >= 7.0), overdue > 0],
        ["bp_emergency", "bp_uncontrolled", "fpg_uncontrolled", "overdue"], "controlled")
    tier_rules = np.array([REASONS[r][0] for r in reason_ids], dtype=object)
    model_flip = rng.random(persons) < 0.15
    tier_model = np.where(model_flip, np.where(tier_rules == "green", "yellow", "red"), tier_rules)
    rank = {"red": 0, "yellow": 1, "green": 2}
    tier = np.where([rank[a] <= rank[b] for a, b in zip(tier_rules, tier_model, strict=True)],
                    tier_rules, tier_model)
    reason_json = [json.dumps([{"id": r, "tier": REASONS[r][0], "zh": REASONS[r][1], "en": REASONS[r][2]}],
                              ensure_ascii=False) for r in reason_ids]
    pd.DataFrame({
        "person_id": person_id, "as_of": as_of, "township_id": township_id, "team_id": team_id,
        "age": age, "sex": sex, "has_hypertension": has_htn, "has_diabetes_t2": has_dm,
        "bp_last_sbp": last_sbp, "bp_last_dbp": last_dbp, "bp_last_date": last_date,
        "fpg_last": last_fpg, "fpg_last_date": np.where(has_dm, last_date, None),
        "bmi_last": rng.normal(25, 3, persons).round(1),
    }).to_parquet(run.features, index=False)
    pd.DataFrame({
        "person_id": person_id, "as_of": as_of, "tier_rules": tier_rules, "tier_model": tier_model,
        "tier": tier, "risk_score": rng.random(persons).round(3), "reasons": reason_json,
        "next_due_on": [as_of - timedelta(days=int(d)) for d in overdue],
        "days_overdue": np.maximum(overdue, 0), "rule_set_version": "demo-1", "model_version": "demo-m1",
    }).to_parquet(run.tiers, index=False)
    run.write_manifest(RunManifest(
        run_id=run_id or f"{as_of.isoformat()}-demo{seed}",
        as_of=as_of,
        versions={"data_fingerprint": f"demo-{seed}-{persons}", "rule_set": "demo-1", "model": "demo-m1",
                  "code": "demo"},
        counts={"tiered": persons},
    ))
    return run.path
