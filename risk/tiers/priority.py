"""Urgency, due dates, reasons and the one priority order of every list (issue 15).

The colour is the risk level; urgency decides when and in which order. Computed here once, used by the
CSV and XLSX lists (risk/products/lists.py), the serving store, its API and the web team list.

Priority order (lower `priority` = see first), a total order so re-runs and every channel agree:
1. urgency level, highest first: 3 emergency (due now), 2 referral, 1 due within `soon_days` (a review
   rule, an overdue visit or a visit falling due in the next two weeks), 0 later;
2. colour, red first (the risk level);
3. days overdue, most first;
4. the finer risk score, highest first (model probability when a model scored the patient, else the rule
   score);
5. person_id, ascending.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from risk.tiers.rule_set import TIER_RANK, TIERS, URGENCIES, Rule, RuleSet

SOON_DAYS = 14
URGENCY_LEVEL_NAMES = {3: "emergency", 2: "refer", 1: "due within 2 weeks", 0: "routine"}


def ordered_reasons(rule_set: RuleSet, pattern: np.ndarray) -> list[Rule]:
    """Fired rules for a person: the colour's rule first, the due date's rule second, then the rest.

    Rules named in another fired rule's `supersedes` are dropped (nested levels show only the highest).
    A green patient's first reason is the default rule (the colour's sentence) even when a rule fired.
    """
    fired = [rule for rule, hit in zip(rule_set.rules, pattern, strict=True) if hit]
    hidden = {x for rule in fired for x in rule.supersedes}
    shown = [rule for rule in fired if rule.id not in hidden]
    colour = max((rule.rank for rule in fired), default=TIER_RANK[rule_set.default_rule.tier])
    colour_rule = next(
        (rule for rule in shown if rule.rank == colour and rule.rank > 0), rule_set.default_rule
    )
    urgent = [rule for rule in shown if rule.urgency and rule is not colour_rule]
    due_rule = max(urgent, key=lambda r: (r.urgency_rank, -(r.due_days or 0)), default=None)
    first = [colour_rule] + ([due_rule] if due_rule is not None else [])
    rest = sorted((r for r in shown if r not in first), key=lambda r: (-r.rank, -r.urgency_rank))
    return first + rest


def rule_urgency(rule_set: RuleSet, fired: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: urgency rank (0 none, 1 review, 2 refer, 3 emergency) and the fewest due_days (NaN: none)."""
    n = fired.shape[0]
    urgency = np.zeros(n, dtype=np.int8)
    due_days = np.full(n, np.nan)
    for i, rule in enumerate(rule_set.rules):
        if not rule.urgency:
            continue
        hit = fired[:, i]
        urgency = np.where(hit, np.maximum(urgency, rule.urgency_rank), urgency)
        due_days = np.where(hit, np.fmin(due_days, float(rule.due_days or 0)), due_days)
    return urgency, due_days


def due_dates(
    colour: np.ndarray,
    urgency: np.ndarray,
    due_days: np.ndarray,
    last_follow_up: np.ndarray,
    as_of: np.ndarray,
    intervals: dict[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """next_due_on (datetime64[D]) and days_overdue.

    Earliest of: last follow-up + the colour's interval, last follow-up + the urgent rules' due_days; the
    as-of date for an emergency or when never followed up.
    """
    if len(colour) == 0:
        return np.zeros(0, dtype="datetime64[D]"), np.zeros(0, dtype=np.int32)
    last_follow_up = np.asarray(last_follow_up, dtype="datetime64[D]")
    as_of = np.asarray(as_of, dtype="datetime64[D]")
    interval = pd.Series(colour).map(intervals).to_numpy(dtype="int64").astype("timedelta64[D]")
    due = last_follow_up + interval
    has_rule_due = ~np.isnan(due_days)
    rule_due = last_follow_up + np.where(has_rule_due, due_days, 0).astype("int64").astype("timedelta64[D]")
    due = np.where(has_rule_due & (rule_due < due), rule_due, due)
    emergency = urgency >= URGENCIES.index("emergency") + 1
    due = np.where(np.isnat(last_follow_up) | emergency, as_of, due)
    overdue = np.maximum((as_of - due).astype("timedelta64[D]").astype("int64"), 0)
    overdue = np.where(np.isnat(due) | np.isnat(as_of), 0, overdue)
    return due.astype("datetime64[D]"), overdue.astype(np.int32)


def urgency_level(urgency: pd.Series | np.ndarray, next_due_on: pd.Series, as_of: pd.Series) -> np.ndarray:
    """3 emergency, 2 refer, 1 due within SOON_DAYS (incl. overdue and review rules), 0 later."""
    urgency = np.asarray(urgency, dtype="int64")
    due = pd.to_datetime(pd.Series(next_due_on)).to_numpy(dtype="datetime64[D]")
    today = pd.to_datetime(pd.Series(as_of)).to_numpy(dtype="datetime64[D]")
    soon = (due - today).astype("timedelta64[D]").astype("int64") <= SOON_DAYS
    soon = soon & ~np.isnat(due)
    return np.where(urgency >= 3, 3, np.where(urgency == 2, 2, np.where(soon | (urgency == 1), 1, 0)))


def priority_rank(tiers: pd.DataFrame) -> np.ndarray:
    """1-based position of every row in the one priority order (see the module docstring).

    tiers needs person_id, tier (the colour shown), urgency (rule urgency rank), next_due_on, as_of,
    days_overdue and rule_score; model_probability is used when present and not null.
    """
    if len(tiers) == 0:
        return np.zeros(0, dtype=np.int64)
    level = urgency_level(tiers["urgency"].fillna(0), tiers["next_due_on"], tiers["as_of"])
    colour = tiers["tier"].map(TIER_RANK).fillna(-1).to_numpy(dtype="int64")
    risk = tiers["rule_score"].to_numpy(dtype="float64") / (len(TIERS) + 1)
    if "model_probability" in tiers.columns:
        model = pd.to_numeric(tiers["model_probability"], errors="coerce").to_numpy(dtype="float64")
        risk = np.where(np.isnan(model), risk, model)
    frame = pd.DataFrame(
        {
            "level": -level,
            "colour": -colour,
            "overdue": -tiers["days_overdue"].fillna(0).to_numpy(dtype="int64"),
            "risk": -np.nan_to_num(risk, nan=0.0),
            "person_id": tiers["person_id"].astype(str).to_numpy(),
        }
    )
    order = frame.sort_values(list(frame.columns), kind="mergesort").index.to_numpy()
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(1, len(frame) + 1)
    return rank


def model_reason(probability: float, typical: float, tier: str) -> dict[str, str]:
    """Reason shown when the model raised the colour: risk against a typical same-age, same-sex patient."""
    ratio = probability / typical if typical > 0 else float("inf")
    times_zh = f"约为同龄同性别患者的{ratio:.1f}倍" if np.isfinite(ratio) else "高于同龄同性别患者"
    times_en = (
        f"about {ratio:.1f} times that of a typical patient of the same age and sex"
        if np.isfinite(ratio)
        else "above that of a typical patient of the same age and sex"
    )
    level_zh = "很高危" if tier == "red" else "高危"
    level_en = "Very high risk" if tier == "red" else "High risk"
    return {
        "id": "model_risk",
        "tier": tier,
        "zh": f"{level_zh}：模型预测12个月内心脑血管事件风险{probability:.0%}，{times_zh}",
        "en": f"{level_en}: predicted 12-month risk of a cardiovascular event {probability:.0%}, {times_en}",
    }


def typical_risk(probability: pd.Series, age: pd.Series, sex: pd.Series) -> pd.Series:
    """Median predicted risk of the scored patients of the same sex and 10-year age band."""
    band = (pd.to_numeric(age, errors="coerce") // 10).fillna(-1)
    keys = pd.DataFrame(
        {
            "band": band.to_numpy(),
            "sex": sex.astype(str).to_numpy(),
            "p": pd.to_numeric(probability, errors="coerce").to_numpy(),
        }
    )
    return keys.groupby(["band", "sex"])["p"].transform("median")


def add_model_reasons(tiers: pd.DataFrame, features: pd.DataFrame) -> pd.Series:
    """tiers.reasons with the model's reason first where the model raised the colour above the rules'."""
    if len(tiers) == 0:
        return tiers["reasons"]
    raised = tiers["tier"].map(TIER_RANK).astype(float) > tiers["tier_rules"].map(TIER_RANK).astype(float)
    if "model_probability" not in tiers.columns or not raised.any():
        return tiers["reasons"]
    # age and sex only: reindexing every feature column took ~1 s at 150k patients (issue 19)
    person = features.set_index("person_id")[["age", "sex"]].reindex(tiers["person_id"])
    typical = typical_risk(tiers["model_probability"], person["age"], person["sex"]).to_numpy()
    # Only the raised rows become Python objects (the whole reasons column took 0.2 s at 150k patients,
    # issue 19); setting one cell of an Arrow-backed column copies the whole column, so no cell is set.
    rows = np.flatnonzero(raised.to_numpy())
    reasons = tiers["reasons"].iloc[rows].to_numpy(dtype=object)
    probability = tiers["model_probability"].to_numpy(dtype=float)[rows]
    tier = tiers["tier"].iloc[rows].to_numpy(dtype=object)
    changed = []
    for k, i in enumerate(rows):
        listed = json.loads(reasons[k]) if reasons[k] else []
        # the rules' colour sentence names a lower level: the model's sentence replaces it
        listed = listed[1:]
        extra = model_reason(float(probability[k]), float(typical[i]), tier[k])
        changed.append(json.dumps([extra, *listed], ensure_ascii=False))
    # The raised rows set in one go on a copy: rebuilding the whole (Arrow-backed) column from Python
    # strings took ~1 s at 150k patients, and setting it cell by cell is quadratic.
    out = tiers["reasons"].copy()
    out.iloc[rows] = pd.array(changed, dtype=out.dtype) if len(changed) else out.iloc[rows]
    return out


COMBINE_PHRASES = {
    "agree": ("规则与模型一致", "Rules and model agree"),
    "model_raised": ("模型预测风险更高，颜色上调", "The model predicts a higher risk; colour raised"),
    "model_raise_capped": (
        "模型预测风险更高，颜色上调一级",
        "The model predicts a higher risk; colour raised one level",
    ),
    "rule_kept": (
        "按规则定级（模型预测风险较低）",
        "Colour from the rules (the model predicts a lower risk)",
    ),
    "rule_only": ("按规则定级", "Colour from the rules"),
}


def combine_phrase(code: str | None, language: str = "zh") -> str:
    """A person-readable sentence for a combine_reason code (raw codes never reach a person)."""
    key = str(code or "rule_only").split(":")[0].strip()
    zh, en = COMBINE_PHRASES.get(key, COMBINE_PHRASES["rule_only"])
    return zh if language == "zh" else en


def finish_priority(
    tiers: pd.DataFrame,
    features: pd.DataFrame,
    intervals: dict[str, int],
    as_of: object,
    explain_model: bool = True,
) -> pd.DataFrame:
    """After the colour is final (rules, maybe raised by the model): due dates from the final colour and
    the rules' urgency, the model's reason where it raised the colour, and the priority rank."""
    last = features.set_index("person_id")["fu_last_date"].reindex(tiers["person_id"])
    last_days = pd.to_datetime(pd.Series(last.to_numpy())).to_numpy(dtype="datetime64[D]")
    today = np.full(len(tiers), np.datetime64(pd.Timestamp(as_of).date(), "D"))
    urgency = (
        tiers["urgency"].fillna(0).to_numpy(dtype="int64") if "urgency" in tiers else np.zeros(len(tiers))
    )
    due_days = (
        pd.to_numeric(tiers["urgency_due_days"], errors="coerce").to_numpy(dtype="float64")
        if "urgency_due_days" in tiers
        else np.full(len(tiers), np.nan)
    )
    due, overdue = due_dates(
        tiers["tier"].to_numpy(dtype=object), urgency, due_days, last_days, today, intervals
    )
    tiers = tiers.copy()
    tiers["urgency"] = urgency.astype("int8")
    tiers["next_due_on"] = pd.to_datetime(pd.Series(due)).dt.date.to_numpy()
    tiers["days_overdue"] = overdue.astype("int64")
    if explain_model and "tier_rules" in tiers.columns:
        tiers["reasons"] = add_model_reasons(tiers, features)  # same index: no conversion of the column
    tiers["priority"] = priority_rank(tiers.assign(as_of=pd.Timestamp(as_of)))
    return tiers
