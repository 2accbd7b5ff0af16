"""Call lists for village doctors (外呼名单): who to phone on a day or week, in the one priority order,
within each village doctor's daily capacity, with a script, the phone, the last result and attempts.

What earlier call results do (risk/definitions/call_results.yaml, policy): a removal keeps the patient off
the list (for the overdue episode, or for good when the person died, moved or was transferred, which is
offered to the registry as a suggested change, never applied); an agreed visit keeps them off until the
agreed date plus a grace period, after which they are overdue again; "remind later" brings them back after
N days; N consecutive failed attempts, a removal for not responding or an invalid phone, or no phone at all
turn the call into a home-visit task. A result belongs to the current overdue episode when it is later than
the patient's last follow-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.calls.definitions import CallDefinitions, call_definitions
from risk.products.lists import TIER_RANK, TIER_ZH, _per_distinct, _runs, file_stem, sheet_names, write_csv
from risk.spreadsheet import XLSXWRITER_OPTIONS, collector_paused, inert_text, string_writer

# The CSV layout for a county's phone platform (docs/call-lists.md). Result columns come last, empty.
CALL_COLUMNS = {
    "list_date": ("名单日期", "List date"),
    "team_id": ("团队", "Team"),
    "township_id": ("乡镇", "Township"),
    "village_id": ("村", "Village"),
    "rank": ("序号", "Rank"),
    "person_id": ("档案号", "Person ID"),
    "name": ("姓名", "Name"),
    "phone": ("电话", "Phone"),
    "tier": ("分级", "Tier"),
    "days_overdue": ("逾期天数", "Days overdue"),
    "next_due_on": ("应随访日期", "Due on"),
    "status": ("名单原因", "Why listed"),
    "reason": ("主要原因", "Headline reason"),
    "script_zh": ("话术", "Script (zh)"),
    "script_en": ("话术(英)", "Script (en)"),
    "last_result": ("上次结果", "Last result"),
    "last_called_on": ("上次呼叫", "Last called on"),
    "attempts": ("已呼叫次数", "Attempts"),
    "result_id": ("结果编号", "Result ID"),
    "result": ("呼叫结果", "Result"),
    "remove_reason": ("移出原因", "Remove reason"),
    "visit_on": ("约定日期", "Visit on"),
    "called_on": ("呼叫日期", "Called on"),
    "sbp": ("收缩压", "SBP"),
    "dbp": ("舒张压", "DBP"),
    "fpg": ("空腹血糖", "FPG"),
    "note": ("备注", "Note"),
}
# The printed call list (the team workbook): the width of each column a village doctor reads or writes in,
# in Excel character units (about 158: one A4 landscape page wide at about 70 % of the default font). The
# other columns (list date, team, township and village of the sheet's title, the due date that the days
# overdue already say, the English script, the last call's date, the result ID the import matches on)
# stay in the workbook, hidden, so a filled-in workbook imports as the CSV does; hidden columns are neither
# printed nor shown on a phone.
PRINTED_WIDTHS = {
    "rank": 4.5,
    "person_id": 9.5,
    "name": 7,
    "phone": 11,
    "tier": 4,
    "days_overdue": 6,
    "status": 7,
    "reason": 17,
    "script_zh": 24,
    "last_result": 7,
    "attempts": 5,
    "result": 8,
    "remove_reason": 7,
    "visit_on": 9,
    "called_on": 9,
    "sbp": 5,
    "dbp": 5,
    "fpg": 5.5,
    "note": 10,
}
LINE_PT = 15  # row height per line of the default 11 pt font
MIN_LINES = 2  # room to write a result by hand on every row
WRAPPED = ("reason", "script_zh", "last_result")  # long texts: wrapped in their column
REASON_TEXT = "reason_zh"  # build_call_lists' extra column: the headline reason's sentence (printed)
RESULT_COLUMNS = ["result", "remove_reason", "visit_on", "called_on", "sbp", "dbp", "fpg", "note"]
STATUS = {  # why a patient is on (or off) the list
    "due": ("到期/逾期", "due or overdue"),
    "missed_visit": ("约定未到", "agreed visit missed"),
    "remind_due": ("稍后再打到期", "call back"),
}


def priority_position(calls: pd.DataFrame) -> pd.Series:
    """Position of each patient in the one priority order: the team priority list's rank, which follows
    risk/tiers/priority.py (urgency, colour, days overdue, risk, person_id), as the web list and API do."""
    return calls["priority_rank"]


@dataclass
class CallListResult:
    calls: pd.DataFrame
    home_visits: pd.DataFrame
    registry_suggestions: pd.DataFrame
    states: pd.DataFrame
    over_capacity: int


def headline_reason(reasons_json: str | None, urgency_of: dict[str, int] | None = None) -> str:
    """The rule code of the row's headline reason (see _headline), or "default"."""
    return _code(_headline(reasons_json, urgency_of))


def headline_reason_zh(reasons_json: str | None, urgency_of: dict[str, int] | None = None) -> str:
    """The same reason as headline_reason, as its Chinese sentence (what the printed list shows); empty
    when the row has no reason."""
    return _sentence(_headline(reasons_json, urgency_of))


def _code(best: dict[str, Any] | None) -> str:
    return "default" if best is None else str(best.get("id", "default"))


def _sentence(best: dict[str, Any] | None) -> str:
    return "" if best is None else str(best.get("zh") or best.get("id", ""))


def _headline(reasons_json: str | None, urgency_of: dict[str, int] | None = None) -> dict[str, Any] | None:
    """The reason the call is about: the most urgent of the row's reasons (`urgency_of`: rule id -> urgency
    rank, 0 none ... 3 emergency, from the rule set that made the tiers), then the highest tier, then the
    first in order. The list is ordered by urgency before colour (risk/tiers/priority.py), so a green
    patient whose glucose stayed above target at two visits (refer) is called before a red patient due
    for a routine visit, and the call is about the glucose, not about "low or medium risk". Without
    `urgency_of`, the first reason of the highest tier."""
    if not reasons_json:
        return None
    reasons = json.loads(reasons_json) if isinstance(reasons_json, str) else list(reasons_json)
    if not reasons:
        return None
    urgency = urgency_of or {}
    return max(  # max keeps the first of equals: the rule order of the tiers' reasons
        reasons,
        key=lambda r: (urgency.get(str(r.get("id")), 0), TIER_RANK.get(r.get("tier", "green"), 0)),
    )


def call_states(
    people: pd.DataFrame, results: pd.DataFrame, on: date, defs: CallDefinitions | None = None
) -> pd.DataFrame:
    """Per person (person_id, fu_last_date): status on `on` from results with called_on <= on.

    status: due | missed_visit | remind_due (listable), awaiting_visit | remind_later | visited | removed
    (off the list), home_visit (a task instead of a call)."""
    defs = defs or call_definitions()
    policy = defs.policy
    base = people[["person_id", "fu_last_date"]].copy()
    base["fu_last_date"] = pd.to_datetime(base["fu_last_date"]).dt.date
    out = base.assign(
        status="due",
        last_result=None,
        last_called_on=None,
        attempts=0,
        failed_streak=0,
        home_visit_reason=None,
        registry_change=None,
        removed_reason=None,
        expected_visit_on=None,
    )
    if results is None or results.empty:
        return out
    res = results[results["called_on"] <= on]
    res = res[res["person_id"].isin(base["person_id"])]
    if res.empty:
        return out
    res = res.merge(base, on="person_id", how="left")
    failed_types = {c for c, e in defs.result_types.items() if e.get("failed_attempt")}
    home_reasons = {c for c, e in defs.remove_reasons.items() if e.get("home_visit")}
    permanent = {c for c, e in defs.remove_reasons.items() if e.get("lasts") == "permanent"}
    registry = {c for c, e in defs.remove_reasons.items() if e.get("registry_change")}
    records = {}
    for person_id, group in res.groupby("person_id", sort=False):
        last = group.iloc[-1]
        fu_last = last["fu_last_date"]
        episode = group if fu_last is None or pd.isna(fu_last) else group[group["called_on"] > fu_last]
        reason = last["remove_reason"] if isinstance(last["remove_reason"], str) else None
        state = {
            "last_result": defs.label(reason or last["result_type"]),
            "last_called_on": last["called_on"],
            "attempts": len(episode),
        }
        streak = 0
        for kind in reversed(episode["result_type"].tolist()):
            if kind not in failed_types:
                break
            streak += 1
        state["failed_streak"] = streak
        gone = group[group["remove_reason"].isin(permanent)]
        if not gone.empty:
            reason = gone.iloc[-1]["remove_reason"]
            state.update(
                status="removed",
                removed_reason=reason,
                registry_change=reason if reason in registry else None,
            )
        elif episode.empty:
            state["status"] = "due"
        else:
            latest = episode.iloc[-1]
            kind = latest["result_type"]
            if kind == "removed":
                state.update(status="removed", removed_reason=latest["remove_reason"])
                if latest["remove_reason"] in home_reasons:
                    state.update(status="home_visit", home_visit_reason=latest["remove_reason"])
            elif kind == "agreed_to_visit":
                state["expected_visit_on"] = latest["visit_on"]
                grace_end = latest["visit_on"] + timedelta(days=policy.agreed_grace_days)
                state["status"] = "awaiting_visit" if on <= grace_end else "missed_visit"
            elif kind == "visited":
                state["status"] = "visited"
            elif streak >= policy.max_failed_attempts:
                state.update(status="home_visit", home_visit_reason="failed_attempts")
            else:
                back = latest["called_on"] + timedelta(days=policy.remind_after_days)
                state["status"] = "remind_later" if on < back else "remind_due"
        records[person_id] = state
    states = pd.DataFrame.from_dict(records, orient="index")
    states.index.name = "person_id"
    out = out.set_index("person_id")
    out.update(states)
    return out.reset_index()


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


SCRIPT_FIELDS = ("name", "last_bp", "last_fpg", "last_bp_date", "days_overdue", "next_due_on")


def _fmt_texts(series: pd.Series) -> list[str]:
    """_fmt of each value, worked out per column: integers at once, text per distinct value."""
    if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
        return series.astype(str).tolist()
    if pd.api.types.is_string_dtype(series.dtype):
        codes, distinct = pd.factorize(series, use_na_sentinel=True)
        return np.array([_fmt(value) for value in distinct] + [""], dtype=object)[codes].tolist()
    return [_fmt(value) for value in series.tolist()]


def _scripts(calls: pd.DataFrame, scripts: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """The call script of each row in Chinese and English: the template of the row's reason (or the
    default) filled with the row's SCRIPT_FIELDS as _fmt shows them, formatted per column, not per row."""
    reasons = calls["reason"].tolist()
    fields = [_fmt_texts(calls[name]) for name in SCRIPT_FIELDS]
    rows = [dict(zip(SCRIPT_FIELDS, values, strict=True)) for values in zip(*fields, strict=True)]
    out = {}
    for language in ("zh", "en"):
        templates = {reason: scripts.get(reason, scripts["default"])[language] for reason in set(reasons)}
        out[language] = [templates[reason].format_map(row) for reason, row in zip(reasons, rows, strict=True)]
    # an empty field (no name on record) leaves no space before the comma: "Hello, your ..."
    out["en"] = [_EMPTY_FIELD_GAP.sub(r"\1", text) for text in out["en"]]
    return out


_EMPTY_FIELD_GAP = re.compile(r" +([,.;:])")


def rule_urgencies(rule_set: Any) -> dict[str, int]:  # noqa: ANN401 - a risk.tiers.rule_set.RuleSet
    """Rule id -> urgency rank (0 none, 1 review, 2 refer, 3 emergency) of the rule set of the tiers."""
    return {rule.id: rule.urgency_rank for rule in (*rule_set.rules, rule_set.default_rule)}


def build_call_lists(
    priority: pd.DataFrame,
    tiers: pd.DataFrame,
    results: pd.DataFrame | None,
    on: date,
    *,
    window_days: int | None = None,
    daily_capacity: int | None = None,
    defs: CallDefinitions | None = None,
    urgency_of: dict[str, int] | None = None,
) -> CallListResult:
    """Call list rows (per team and village, in priority order, within capacity), home-visit tasks and
    suggested registry changes. `priority` is the run's priority list (build_priority_list); `urgency_of`
    (rule id -> urgency rank, `rule_urgencies`) makes each row's headline reason and script the most urgent
    of its reasons (without it: the first of the highest tier)."""
    defs = defs or call_definitions()
    window_days = window_days or defs.policy.window_days
    daily_capacity = daily_capacity or defs.policy.daily_capacity
    frame = priority.rename(columns={"rank": "priority_rank"}).merge(
        tiers[["person_id", "reasons"]], on="person_id", how="left"
    )
    frame["fu_last_date"] = pd.to_datetime(frame["last_follow_up"].replace("", None))
    states = call_states(frame, results, on, defs)
    frame = frame.drop(columns="fu_last_date").merge(states, on="person_id", how="left")
    horizon = on + timedelta(days=window_days - 1)
    due_on = pd.to_datetime(frame["next_due_on"].replace("", None)).dt.date
    is_due = due_on.notna() & (due_on <= horizon)
    listable = frame["status"].isin(list(STATUS)) & (
        is_due | frame["status"].isin(["missed_visit", "remind_due"])
    )
    no_phone = frame["phone"].fillna("").str.strip() == ""
    home = frame[(frame["status"] == "home_visit") | (listable & no_phone)].copy()
    home["home_visit_reason"] = home["home_visit_reason"].fillna("no_phone")
    candidates = frame[listable & ~no_phone].copy()
    candidates["_order"] = priority_position(candidates)
    candidates = candidates.sort_values(["team_id", "village_id", "_order", "person_id"], kind="mergesort")
    candidates["rank"] = candidates.groupby(["team_id", "village_id"]).cumcount() + 1
    capacity = daily_capacity * window_days
    calls = candidates[candidates["rank"] <= capacity].copy()
    over = int((candidates["rank"] > capacity).sum())
    # a few thousand distinct reason lists: each parsed once, for the code and the sentence
    headline = _per_distinct(calls["reasons"], lambda r: _headline(r, urgency_of))
    calls["reason"] = headline.map(_code)
    reason_zh = headline.map(_sentence).to_numpy(dtype=object)
    scripts = _scripts(calls, defs.scripts)
    calls["script_zh"], calls["script_en"] = scripts["zh"], scripts["en"]
    calls["status"] = calls["status"].map(lambda s: STATUS[s][0])
    calls["tier"] = calls["tier"].map(lambda t: TIER_ZH.get(t, t))
    calls["list_date"] = on.isoformat()
    calls["result_id"] = on.isoformat() + "-" + calls["person_id"].astype(str)
    calls["last_called_on"] = calls["last_called_on"].map(_fmt)
    calls["last_result"] = calls["last_result"].map(_fmt)
    for column in RESULT_COLUMNS:
        calls[column] = ""
    calls = calls[list(CALL_COLUMNS)].reset_index(drop=True)
    # not a calls.csv column (the platform gets the rule code): the printed list's 主要原因
    calls[REASON_TEXT] = reason_zh
    home = home[
        [
            "team_id",
            "township_id",
            "village_id",
            "person_id",
            "name",
            "phone",
            "tier",
            "days_overdue",
            "home_visit_reason",
            "attempts",
            "last_result",
            "last_called_on",
        ]
    ]
    registry = frame[frame["registry_change"].notna()][
        ["team_id", "township_id", "village_id", "person_id", "name", "registry_change", "last_called_on"]
    ]
    return CallListResult(
        calls=calls,
        home_visits=home.reset_index(drop=True),
        registry_suggestions=registry.reset_index(drop=True),
        states=states,
        over_capacity=over,
    )


@dataclass
class CallExport:
    calls: int
    home_visits: int
    registry_suggestions: int
    over_capacity: int
    files: int


def export_call_lists(
    result: CallListResult,
    out_dir: Path,
    on: date,
    xlsx: bool = True,
    submit: Callable[..., Any] | None = None,
) -> CallExport:
    """calls.csv (platform layout), home_visits.csv, registry_suggestions.csv, and a printable workbook per
    team (one sheet per village, Chinese and English headers, empty result columns to fill in).

    With `submit` (an executor's submit, e.g. PendingExport.submit), the workbooks are handed to it and
    written by its workers; the caller waits for them. Without, they are written here."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(result.calls[list(CALL_COLUMNS)].astype(str), out_dir / "calls.csv")
    write_csv(result.home_visits.astype(str), out_dir / "home_visits.csv")
    write_csv(result.registry_suggestions.astype(str), out_dir / "registry_suggestions.csv")
    files = 3
    if xlsx:
        for job in call_workbook_jobs(result.calls, out_dir / "xlsx", on):
            if submit is None:
                write_call_workbook(*job)
            else:
                submit(write_call_workbook, *job)
            files += 1
    return CallExport(
        calls=len(result.calls),
        home_visits=len(result.home_visits),
        registry_suggestions=len(result.registry_suggestions),
        over_capacity=result.over_capacity,
        files=files,
    )


def _cell_text(series: pd.Series) -> np.ndarray:
    """Each value as its workbook cell shows it, inert_text(_fmt(value)), worked out per column: text
    columns per distinct value, integers at once (per-cell formatting was most of the call workbooks)."""
    if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
        return series.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_string_dtype(series.dtype):
        codes, distinct = pd.factorize(series, use_na_sentinel=True)
        texts = [inert_text(_fmt(value)) for value in distinct]
        return np.array(texts + [""], dtype=object)[codes]  # code -1 (missing) -> "" as _fmt gives
    return np.array([inert_text(_fmt(value)) for value in series], dtype=object)


def call_workbook_jobs(calls: pd.DataFrame, folder: Path, on: date) -> list[tuple]:
    """(villages, path, title) per team for write_call_workbook: villages in ID order, each with its rows
    (in list order) as the cell texts, computed here at once for every team."""
    # the reason as its sentence where build_call_lists gave it (the CSV keeps the rule code)
    shown = {name: name for name in CALL_COLUMNS}
    if REASON_TEXT in calls:
        shown["reason"] = REASON_TEXT
    cells = np.column_stack([_cell_text(calls[shown[name]]) for name in CALL_COLUMNS]) if len(calls) else None
    teams = calls["team_id"].astype(str).to_numpy(dtype=object)
    villages = calls["village_id"].astype(str).to_numpy(dtype=object)
    keys = pd.DataFrame({"team": teams, "village": villages})
    order = keys.sort_values(["team", "village"], kind="mergesort").index.to_numpy()
    teams, villages = teams[order], villages[order]
    jobs = []
    for start, stop in _runs(teams):
        groups = [
            (villages[start + a], cells[order[start + a : start + b]].tolist())
            for a, b in _runs(villages[start:stop])
        ]
        team = teams[start]
        jobs.append((groups, folder / f"{file_stem(team)}.xlsx", f"外呼名单 {on.isoformat()} {team}"))
    return jobs


@collector_paused()
def write_call_workbook(villages: list[tuple[str, list[list[str]]]], path: Path, title: str) -> None:
    """One sheet per village: title, Chinese and English headers, the rows' cell texts (call_workbook_jobs)
    with the result columns filled yellow to be written in. Printed on A4 landscape, one page wide, with
    the columns of PRINTED_WIDTHS (the others hidden), the long texts wrapped and each row as tall as its
    longest text."""
    import xlsxwriter

    from risk.products.workbook import TIER_FILL, wrapped_lines

    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(CALL_COLUMNS)
    # the result columns come last (yellow, to be written in); the cells before them are read
    plain = len(columns) - len(RESULT_COLUMNS)
    assert columns[plain:] == RESULT_COLUMNS
    book = xlsxwriter.Workbook(str(path), {"in_memory": True, **XLSXWRITER_OPTIONS})
    bold = book.add_format(
        {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"}
    )
    fill = book.add_format({"bg_color": "#FFF2CC", "border": 1})
    cell = {"valign": "top", "border": 1}
    text = book.add_format(cell)
    wrap = book.add_format({**cell, "text_wrap": True})
    # the colour cell in its colour, as on the priority list
    tiers = {TIER_ZH[t]: book.add_format({**cell, "bg_color": colour}) for t, colour in TIER_FILL.items()}
    formats = [wrap if name in WRAPPED else text for name in columns[:plain]]
    tier_col = columns.index("tier")
    wrapped = [(columns.index(name), PRINTED_WIDTHS[name]) for name in WRAPPED]
    shown = [(col, PRINTED_WIDTHS[name]) for col, name in enumerate(columns) if name in PRINTED_WIDTHS]
    header_lines = [
        max(wrapped_lines(CALL_COLUMNS[columns[col]][i], width) for col, width in shown) for i in (0, 1)
    ]
    sheets = sheet_names([village for village, _ in villages])
    for village, rows in villages:
        sheet = book.add_worksheet(sheets[village])
        write = string_writer(sheet)
        write(0, shown[0][0], f"{title} {village}")
        for col, name in enumerate(columns):
            zh, en = CALL_COLUMNS[name]
            write(1, col, zh, bold)
            write(2, col, en, bold)
        sheet.set_row(1, LINE_PT * header_lines[0] + 2)
        sheet.set_row(2, LINE_PT * header_lines[1] + 2)
        for r, record in enumerate(rows, start=3):
            formats[tier_col] = tiers.get(record[tier_col], text)
            for col in range(plain):
                write(r, col, record[col], formats[col])
            for col in range(plain, len(record)):
                write(r, col, record[col], fill)
            lines = max(MIN_LINES, *(wrapped_lines(record[col], width) for col, width in wrapped))
            sheet.set_row(r, LINE_PT * lines + 2)
        for col, name in enumerate(columns):
            if name in PRINTED_WIDTHS:
                sheet.set_column(col, col, PRINTED_WIDTHS[name])
            else:
                sheet.set_column(col, col, None, None, {"hidden": True})
        sheet.freeze_panes(3, columns.index("phone") + 1)  # rank to phone stay in view on a phone
        sheet.set_landscape()
        sheet.set_paper(9)  # A4
        sheet.set_margins(left=0.3, right=0.3, top=0.6, bottom=0.6)
        sheet.fit_to_pages(1, 0)
        sheet.repeat_rows(1, 2)
        sheet.set_footer("&C&10第 &P / &N 页", {"margin": 0.3})
    book.close()
