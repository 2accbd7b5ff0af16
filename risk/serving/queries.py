"""Reads of the serving store, always through the current-run pointer and always filtered to the caller's
scope in SQL. A scoped caller cannot tell an out-of-scope patient from a non-existent one: both come back
as `None` from the same query.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, or_, select

from risk.definitions import thresholds
from risk.privacy import hash_national_id, mask_phone
from risk.serving import schema
from risk.serving.auth import TEAM_ROLES, User
from risk.tiers.priority import combine_phrase

P = schema.patients
ST = schema.search_terms
SEARCH_LIMIT = 20
LIST_LIMIT = 2000
_NATIONAL_ID = re.compile(r"^\d{17}[\dX]$|^\d{15}$")
_PHONE_LIKE = re.compile(r"^[\d\s\-+()]+$")
_TOP = "\U0010ffff"  # sorts after every character: [q, q + _TOP) is the prefix range of q


class NoCurrentRun(Exception):
    """Nothing has been published yet."""


def current_run(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        select(schema.runs.c.run_id, schema.runs.c.as_of, schema.runs.c.published_at,
               schema.runs.c.n_persons, schema.runs.c.rule_set_version, schema.runs.c.model_version)
        .join(schema.current_run, schema.current_run.c.run_id == schema.runs.c.run_id)
    ).mappings().first()
    return dict(row) if row else None


def _run_id(conn: Connection) -> str:
    run_id = conn.execute(select(schema.current_run.c.run_id)).scalar_one_or_none()
    if run_id is None:
        raise NoCurrentRun
    return run_id


def _scoped(query: Select, user: User, team_col: Any, township_col: Any) -> Select:
    if user.role in TEAM_ROLES:
        return query.where(team_col == user.team_id)
    if user.role == "township":
        return query.where(township_col == user.township_id)
    return query


def control_thresholds() -> dict[str, float]:
    values = thresholds()
    bp = values["bp_controlled"]
    return {"sbp": float(bp["sbp_below"]), "dbp": float(bp["dbp_below"]),
            "fpg": float(values["fpg_controlled_below"])}


def _summary(row: Any) -> dict[str, Any]:
    reasons = json.loads(row["reasons"] or "[]")
    return {
        "person_id": row["person_id"], "name": row["name"], "sex": row["sex"], "age": row["age"],
        "phone_masked": mask_phone(row["phone"]), "national_id_masked": row["national_id_masked"],
        "team_id": row["team_id"], "township_id": row["township_id"], "village_id": row["village_id"],
        "tier": row["tier"], "tier_rules": row["tier_rules"], "tier_model": row["tier_model"],
        "next_due_on": row["next_due_on"], "days_overdue": row["days_overdue"],
        "top_reason": reasons[0] if reasons else None,
    }


_SUMMARY_COLUMNS = [
    P.c.person_id, P.c.name, P.c.sex, P.c.age, P.c.phone, P.c.national_id_masked, P.c.team_id,
    P.c.township_id, P.c.village_id, P.c.tier, P.c.tier_rules, P.c.tier_model, P.c.next_due_on,
    P.c.days_overdue, P.c.reasons,
]


def _patient_statements() -> dict[str, Select]:
    """The lookup's two statements, built once per scope kind with bind parameters: building a Select and
    its cache key costs more than the indexed read itself (issue 19). The patient row comes with the current
    run's as-of in one statement (current-run pointer -> primary key of serving_patients)."""
    R, CR, TH = schema.runs, schema.current_run, schema.tier_history
    row = (select(P, R.c.as_of.label("_run_as_of"))
           .join(CR, CR.c.run_id == P.c.run_id).join(R, R.c.run_id == P.c.run_id)
           .where(P.c.person_id == bindparam("person_id")))
    return {
        "county": row,
        "team": row.where(P.c.team_id == bindparam("scope")),
        "township": row.where(P.c.township_id == bindparam("scope")),
        "history": select(TH.c.as_of, TH.c.run_id, TH.c.tier, TH.c.tier_rules, TH.c.tier_model)
        .join(R, R.c.run_id == TH.c.run_id)
        # two comparisons, not IN (...): an IN list is re-expanded into the SQL text on every execution
        .where(TH.c.person_id == bindparam("person_id"), or_(R.c.state == "published", R.c.state == "pruned"))
        .order_by(TH.c.as_of),
    }


_PATIENT = _patient_statements()


def patient_view(conn: Connection, user: User, person_id: str) -> tuple[str, dict[str, Any] | None]:
    """(run_id, patient view) or (run_id, None) when absent or out of scope: the caller cannot tell which."""
    if user.role in TEAM_ROLES:
        kind, scope = "team", user.team_id
    elif user.role == "township":
        kind, scope = "township", user.township_id
    else:
        kind, scope = "county", None
    row = conn.execute(_PATIENT[kind], {"person_id": person_id, "scope": scope}).mappings().first()
    if row is None:
        return _run_id(conn), None
    run_id, as_of = row["run_id"], row["_run_as_of"]
    history = conn.execute(_PATIENT["history"], {"person_id": person_id}).mappings().all()
    view = _summary(row)
    view.update({
        "run_id": run_id, "as_of": as_of, "phone": row["phone"], "unit_id": row["unit_id"],
        "conditions": json.loads(row["conditions"] or "[]"), "risk_score": row["risk_score"],
        "reasons": json.loads(row["reasons"] or "[]"),
        "model_probability": row["model_probability"],
        "model_reasons": json.loads(row["model_reasons"] or "[]"),
        "combine_reason": row["combine_reason"],  # the code, for audit; people see combine_text
        "combine_text": {"zh": combine_phrase(row["combine_reason"], "zh"),
                         "en": combine_phrase(row["combine_reason"], "en")},
        "last_measurements": json.loads(row["last_measurements"] or "{}"),
        "bp_series": json.loads(row["bp_series"] or "[]"),
        "glucose_series": json.loads(row["glucose_series"] or "[]"),
        "history": [dict(h) for h in history], "thresholds": control_thresholds(),
        "rule_set_version": row["rule_set_version"], "model_version": row["model_version"],
    })
    return run_id, view


def normalise_query(text: str) -> str:
    value = re.sub(r"\s+", "", text).upper()
    if _PHONE_LIKE.match(text.strip()):
        value = re.sub(r"\D", "", value)
    return value


def search(conn: Connection, user: User, text: str, limit: int = SEARCH_LIMIT) -> tuple[str, list[dict]]:
    """Prefix search on person ID, name, phone, last 4 of phone; a full national ID typed in
    is hashed and matched on the hash (the clear ID is never stored)."""
    run_id = _run_id(conn)
    term = normalise_query(text)
    if not term:
        return run_id, []
    if _NATIONAL_ID.match(term):
        id_query = select(P.c.person_id).where(P.c.run_id == run_id,
                                               P.c.national_id_hash == hash_national_id(term))
        person_ids = list(conn.execute(_scoped(id_query, user, P.c.team_id, P.c.township_id)).scalars())
    else:
        term_query = select(ST.c.person_id).where(ST.c.run_id == run_id, ST.c.term >= term,
                                                  ST.c.term < term + _TOP)
        term_query = _scoped(term_query, user, ST.c.team_id, ST.c.township_id).order_by(ST.c.term)
        # A person can match through several terms: over-fetch a little, keep the first `limit` distinct.
        matches = conn.execute(term_query.limit(limit * 3)).scalars()
        person_ids = list(dict.fromkeys(matches))[:limit]
    if not person_ids:
        return run_id, []
    rows = conn.execute(select(*_SUMMARY_COLUMNS).where(P.c.run_id == run_id, P.c.person_id.in_(person_ids))
                        ).mappings().all()
    by_id = {row["person_id"]: _summary(row) for row in rows}
    return run_id, [by_id[pid] for pid in person_ids if pid in by_id]


def team_in_scope(conn: Connection, user: User, team_id: str) -> bool:
    run_id = _run_id(conn)
    query = _scoped(select(P.c.person_id).where(P.c.run_id == run_id, P.c.team_id == team_id), user,
                    P.c.team_id, P.c.township_id)
    return conn.execute(query.limit(1)).first() is not None


def team_priority_list(conn: Connection, user: User, team_id: str, limit: int = LIST_LIMIT
                       ) -> tuple[str, list[dict]]:
    """The team's patients in the one priority order of tiers.parquet (risk/tiers/priority.py); runs
    published before it existed (no priority) fall back to red first, most overdue first."""
    run_id = _run_id(conn)
    query = _scoped(select(*_SUMMARY_COLUMNS).where(P.c.run_id == run_id, P.c.team_id == team_id), user,
                    P.c.team_id, P.c.township_id)
    query = query.order_by(P.c.priority.is_(None), P.c.priority, P.c.tier_rank, P.c.days_overdue.desc(),
                           P.c.person_id).limit(limit)
    # the team list is the call list: in-scope staff see the full number so the page can dial it
    return run_id, [{**_summary(row), "phone": row["phone"]} for row in conn.execute(query).mappings()]


def team_workload(conn: Connection, user: User, team_id: str) -> tuple[str, dict[str, Any]]:
    """The team's workload per week against its capacity (risk/tiers/workload.py, capacity.yaml): counts
    only, no patient. The store keeps the team, so the unit here is the team whatever capacity.yaml says."""
    import pandas as pd

    from risk.definitions import capacity_settings
    from risk.tiers.workload import workload_summary, workload_table

    run = current_run(conn)
    if run is None:
        raise NoCurrentRun
    query = _scoped(
        select(P.c.person_id, P.c.team_id, P.c.tier, P.c.next_due_on, P.c.priority, P.c.urgency)
        .where(P.c.run_id == run["run_id"], P.c.team_id == team_id), user, P.c.team_id, P.c.township_id,
    )
    rows = pd.DataFrame(conn.execute(query).mappings().all(),
                        columns=["person_id", "team_id", "tier", "next_due_on", "priority", "urgency"])
    settings = capacity_settings()
    table = workload_table(rows, "team_id", run["as_of"], settings)
    weeks = [
        {**{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if k != "unit"}}
        for row in table.to_dict(orient="records")
    ]
    summary = workload_summary(table, "team_id", settings)
    return run["run_id"], {"summary": summary, "weeks": weeks}


def aggregates(conn: Connection, user: User) -> dict[str, Any]:
    """Tier counts by township and team within the caller's scope (analysts: the county)."""
    run_id = _run_id(conn)
    query = _scoped(
        select(P.c.township_id, P.c.team_id, P.c.tier, func.count().label("n"))
        .where(P.c.run_id == run_id).group_by(P.c.township_id, P.c.team_id, P.c.tier),
        user, P.c.team_id, P.c.township_id,
    )
    rows = conn.execute(query).mappings().all()
    totals: dict[str, int] = {}
    by_team: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        tier = row["tier"] or "unknown"
        totals[tier] = totals.get(tier, 0) + row["n"]
        counts = by_team.setdefault((row["township_id"], row["team_id"]), {})
        counts[tier] = counts.get(tier, 0) + row["n"]
    return {
        "run_id": run_id, "totals": totals,
        "by_team": [{"township_id": township, "team_id": team, "counts": counts}
                    for (township, team), counts in sorted(by_team.items(), key=lambda kv: (str(kv[0][0]),
                                                                                              str(kv[0][1])))],
    }


def call_cascade(conn: Connection, user: User) -> dict[str, Any]:
    """The current run's call cascade rows (already small-cell suppressed; county-level data)."""
    run_id = _run_id(conn)
    table = schema.call_cascade
    query = select(table).where(table.c.run_id == run_id).order_by(
        table.c.month, table.c.level, table.c.unit, table.c.step, table.c.result)
    rows = conn.execute(query).mappings().all()
    return {"run_id": run_id, "rows": [{k: v for k, v in row.items() if k != "run_id"} for row in rows]}


__all__ = ["NoCurrentRun", "aggregates", "call_cascade", "current_run", "patient_view", "search",
           "team_in_scope", "team_priority_list", "team_workload"]
