"""One call result: parsing and validation shared by the API, the web form and the file import.

A result is accepted or refused with a reason code (never with the personal values of the row), so the
same codes show in API errors and in the quarantine file of an import.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from risk.calls.definitions import CallDefinitions, call_definitions

# Plausible ranges of a reading taken on a visit (the contract's vitals ranges; FPG in mmol/L).
READING_RANGES = {"sbp": (50.0, 300.0), "dbp": (20.0, 200.0), "fpg": (1.0, 40.0)}
MAX_ID = 64

QUARANTINE_REASONS = {
    "missing_person_id": "no person ID",
    "missing_result": "no result given",
    "unknown_result": "result is not a known code or label",
    "missing_remove_reason": "removed without a reason",
    "unknown_remove_reason": "removal reason is not a known code or label",
    "missing_visit_on": "agreed to visit without a date",
    "bad_date": "a date is not YYYY-MM-DD",
    "future_call": "call date after today",
    "missing_readings": "visited without readings (BP needs both values)",
    "reading_out_of_range": "a reading outside its plausible range",
    "result_id_too_long": "result ID longer than 64 characters",
    "unknown_person": "person not in the published run",
    "out_of_scope": "person outside the caller's scope",
    "result_id_conflict": "result ID already used for a different result",
}


class InvalidResult(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(QUARANTINE_REASONS.get(code, code))
        self.code = code


@dataclass(frozen=True)
class CallResult:
    result_id: str
    person_id: str
    called_on: date
    result_type: str
    remove_reason: str | None = None
    visit_on: date | None = None
    sbp: float | None = None
    dbp: float | None = None
    fpg: float | None = None
    note: str | None = None

    def as_row(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy was half the time of a 100k-row import
        return {name: getattr(self, name) for name in _FIELDS}

    def same_content(self, row: dict[str, Any]) -> bool:
        mine = self.as_row()
        return all(_same(mine[k], row.get(k)) for k in mine if k != "note")


_FIELDS = [f.name for f in fields(CallResult)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            a is not None and b is not None and abs(float(a) - float(b)) < 1e-6 or (a is None and b is None)
        )
    if isinstance(b, datetime):
        b = b.date()
    return a == b


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _date(value: Any) -> date | None:
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError as exc:
        raise InvalidResult("bad_date") from exc


def _reading(value: Any, name: str) -> float | None:
    if _blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidResult("reading_out_of_range") from exc
    low, high = READING_RANGES[name]
    if not low <= number <= high:
        raise InvalidResult("reading_out_of_range")
    return number


def derived_result_id(person_id: str, called_on: date, result_type: str) -> str:
    """A stable ID for a row that came without one, so importing the same file twice adds nothing."""
    digest = hashlib.sha256(f"{person_id}|{called_on}|{result_type}".encode()).hexdigest()[:20]
    return f"auto-{digest}"


def parse_result(raw: dict[str, Any], *, today: date, defs: CallDefinitions | None = None) -> CallResult:
    """A validated CallResult from loosely typed fields (codes or zh/en labels); raises InvalidResult."""
    defs = defs or call_definitions()
    person_id = "" if _blank(raw.get("person_id")) else str(raw["person_id"]).strip()
    if not person_id:
        raise InvalidResult("missing_person_id")
    if _blank(raw.get("result")):
        raise InvalidResult("missing_result")
    parsed = defs.parse_result(raw.get("result"))
    if parsed is None:
        raise InvalidResult("unknown_result")
    result_type, reason = parsed
    if result_type == "removed" and reason is None:
        if _blank(raw.get("remove_reason")):
            raise InvalidResult("missing_remove_reason")
        reason = defs.parse_reason(raw.get("remove_reason"))
        if reason is None:
            raise InvalidResult("unknown_remove_reason")
    called_on = _date(raw.get("called_on")) or today
    if called_on > today:
        raise InvalidResult("future_call")
    visit_on = _date(raw.get("visit_on"))
    if result_type == "agreed_to_visit" and visit_on is None:
        raise InvalidResult("missing_visit_on")
    readings = {name: _reading(raw.get(name), name) for name in READING_RANGES}
    if result_type == "visited":
        has_bp = readings["sbp"] is not None and readings["dbp"] is not None
        if (readings["sbp"] is None) != (readings["dbp"] is None) or not (
            has_bp or readings["fpg"] is not None
        ):
            raise InvalidResult("missing_readings")
    else:
        readings = dict.fromkeys(READING_RANGES)
    result_id = "" if _blank(raw.get("result_id")) else str(raw["result_id"]).strip()
    if len(result_id) > MAX_ID:
        raise InvalidResult("result_id_too_long")
    note = None if _blank(raw.get("note")) else str(raw["note"]).strip()[:500]
    return CallResult(
        result_id=result_id or derived_result_id(person_id, called_on, result_type),
        person_id=person_id,
        called_on=called_on,
        result_type=result_type,
        remove_reason=reason if result_type == "removed" else None,
        visit_on=visit_on if result_type == "agreed_to_visit" else None,
        note=note,
        **readings,
    )


# --- many rows at once (file import, and the API's single row through the same path) -------------------

PARSED_COLUMNS = _FIELDS


def _per_value(values: Any, parse: Any) -> tuple[list[Any], list[str | None]]:
    """Apply a scalar parser once per distinct value (a file has few distinct dates, labels, readings), so
    many rows cost dictionary look-ups while each value keeps exactly the scalar parser's meaning."""
    if isinstance(values, pd.Series) and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # only str (and missing) values: factorise in C, parse each distinct value once
        at, uniques = pd.factorize(values, use_na_sentinel=False)
        parsed_u, codes_u = _per_value(list(uniques), parse)
        positions = at.tolist()
        return [parsed_u[i] for i in positions], [codes_u[i] for i in positions]
    seen: dict[Any, tuple[Any, str | None]] = {}
    out: list[Any] = []
    codes: list[str | None] = []
    for value in values:
        try:
            key: Any = (type(value), value)
            hit = seen.get(key)
        except TypeError:  # unhashable: parse it on its own
            key, hit = None, None
        if hit is None:
            try:
                hit = (parse(value), None)
            except InvalidResult as exc:
                hit = (None, exc.code)
            if key is not None:
                seen[key] = hit
        out.append(hit[0])
        codes.append(hit[1])
    return out, codes


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value).strip()


def parse_results_frame(
    frame: pd.DataFrame, *, today: date, defs: CallDefinitions | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """`parse_result` for every row of a frame at once: (valid results with the columns of CallResult,
    indexed by the row's position; reason code per refused row, same index). Each row gets the code the
    scalar parser would raise first (same checks, same order), and every row is in exactly one of the two."""
    defs = defs or call_definitions()
    n = len(frame)

    def column(name: str) -> Any:
        return frame[name] if name in frame.columns else [None] * n

    person_id, _ = _per_value(column("person_id"), _text)
    result_raw = column("result")
    result_blank, _ = _per_value(result_raw, _blank)
    parsed, _ = _per_value(result_raw, lambda v: None if _blank(v) else defs.parse_result(v))
    reason_raw = column("remove_reason")
    reason_blank, _ = _per_value(reason_raw, _blank)
    reason_parsed, _ = _per_value(reason_raw, lambda v: None if _blank(v) else defs.parse_reason(v))
    called, called_err = _per_value(column("called_on"), _date)
    visit, visit_err = _per_value(column("visit_on"), _date)
    readings = {
        name: _per_value(column(name), lambda v, name=name: _reading(v, name)) for name in READING_RANGES
    }
    result_id, _ = _per_value(column("result_id"), _text)
    note, _ = _per_value(column("note"), lambda v: None if _blank(v) else str(v).strip()[:500])

    rtype = np.array([p[0] if p else None for p in parsed], dtype=object)
    reason = np.array(
        [
            p[1] if p and p[1] is not None else (r if p and p[0] == "removed" else None)
            for p, r in zip(parsed, reason_parsed, strict=True)
        ],
        dtype=object,
    )
    called_on = np.array([c if c is not None else today for c in called], dtype=object)
    visit_on = np.array(visit, dtype=object)
    values = {name: np.array(readings[name][0], dtype=object) for name in READING_RANGES}
    has = {name: np.array([v is not None for v in values[name]]) for name in READING_RANGES}
    reading_err = np.zeros(n, dtype=bool)
    for name in READING_RANGES:
        reading_err |= np.array([c is not None for c in readings[name][1]], dtype=bool)
    removed_no_reason = (rtype == "removed") & np.array([p is not None and p[1] is None for p in parsed])
    visited = rtype == "visited"
    bp_half = has["sbp"] != has["dbp"]
    no_reading = ~((has["sbp"] & has["dbp"]) | has["fpg"])
    checks = [  # the order of parse_result
        ("missing_person_id", np.array([p == "" for p in person_id])),
        ("missing_result", np.array(result_blank, dtype=bool)),
        ("unknown_result", np.array([p is None for p in parsed])),
        ("missing_remove_reason", removed_no_reason & np.array(reason_blank, dtype=bool)),
        ("unknown_remove_reason", removed_no_reason & np.array([r is None for r in reason])),
        ("bad_date", np.array([c is not None for c in called_err])),
        ("future_call", np.array([c > today for c in called_on])),
        ("bad_date", np.array([c is not None for c in visit_err])),
        ("missing_visit_on", (rtype == "agreed_to_visit") & np.array([v is None for v in visit_on])),
        ("reading_out_of_range", reading_err),
        ("missing_readings", visited & (bp_half | no_reading)),
        ("result_id_too_long", np.array([len(r) > MAX_ID for r in result_id])),
    ]
    code = np.full(n, None, dtype=object)
    for name, mask in checks:
        code[(code == None) & mask] = name  # noqa: E711 - elementwise on an object array
    ok = code == None  # noqa: E711
    index = frame.index if n else pd.RangeIndex(0)
    rid = np.array(result_id, dtype=object)
    missing_id = ok & (rid == "")
    for i in np.flatnonzero(missing_id):
        rid[i] = derived_result_id(person_id[i], called_on[i], rtype[i])
    keep = lambda mask, arr: np.where(mask, arr, None)  # noqa: E731
    out = pd.DataFrame(
        {
            "result_id": rid,
            "person_id": np.array(person_id, dtype=object),
            "called_on": called_on,
            "result_type": rtype,
            "remove_reason": keep(rtype == "removed", reason),
            "visit_on": keep(rtype == "agreed_to_visit", visit_on),
            **{name: keep(visited, values[name]) for name in READING_RANGES},
            "note": np.array(note, dtype=object),
        },
        index=index,
    )[PARSED_COLUMNS]
    return out[ok], pd.Series(code[~ok], index=index[~ok], dtype=object)
