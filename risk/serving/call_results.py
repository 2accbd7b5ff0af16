"""Call results in the serving store: recorded by the API, the web form and the file import, read back by
the patient card and by the next nightly run.

Every write checks the caller's scope against the patient's row in the current run and is audited in the
same transaction as the result itself (one audit row per result, `denied` for a refused one). Results live
in their own table, untouched by publishing and pruning, so a result recorded while a run is being
published is kept whichever run is current when it commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from risk.calls.results import PARSED_COLUMNS, READING_RANGES, CallResult, parse_results_frame
from risk.serving import schema
from risk.serving.auth import TEAM_ROLES, User
from risk.serving.publish import insert_rows
from risk.serving.store import writer
from risk.spreadsheet import write_csv

CR = schema.call_results
P = schema.patients
CHUNK = 500
COLUMNS = [c.name for c in CR.columns]


@dataclass
class RecordOutcome:
    accepted_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # parsed columns, in row order
    duplicate_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason code)
    run_id: str | None = None

    @property
    def accepted(self) -> list[CallResult]:
        return _results(self.accepted_rows)

    @property
    def duplicates(self) -> list[CallResult]:
        return _results(self.duplicate_rows)


def _results(frame: pd.DataFrame) -> list[CallResult]:
    if frame.empty:
        return []
    return [CallResult(*row) for row in frame[PARSED_COLUMNS].itertuples(index=False, name=None)]


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _in_scope(user: User, place: dict[str, Any]) -> bool:
    if user.role in TEAM_ROLES:
        return place["team_id"] == user.team_id
    if user.role == "township":
        return place["township_id"] == user.township_id
    return user.role == "county_admin"


def current_run_id(conn: Connection) -> str | None:
    return conn.execute(select(schema.current_run.c.run_id)).scalar_one_or_none()


DATES = {"called_on", "visit_on", "recorded_at"}
PLACE = ["team_id", "township_id", "village_id"]


def _places(conn: Connection, run_id: str, person_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    places: dict[str, dict[str, Any]] = {}
    wanted = set(person_ids)
    columns = [P.c.person_id, P.c.team_id, P.c.township_id, P.c.village_id]
    if len(wanted) > 20 * CHUNK:  # a big import: one scan of the run beats hundreds of IN lists
        rows = conn.execute(select(*columns).where(P.c.run_id == run_id)).fetchall()
    else:
        rows = []
        for chunk in _chunks(sorted(wanted)):
            rows += conn.execute(
                select(*columns).where(P.c.run_id == run_id, P.c.person_id.in_(chunk))
            ).fetchall()
    for person_id, *place in rows:
        if person_id in wanted:
            places[person_id] = dict(zip(PLACE, place, strict=True))
    return places


def _existing(conn: Connection, result_ids: Sequence[str]) -> pd.DataFrame:
    """Stored results with these IDs (parsed columns), indexed by result_id."""
    rows: list[Any] = []
    wanted = [CR.c[name] for name in PARSED_COLUMNS]
    for chunk in _chunks(sorted(set(result_ids))):
        rows += conn.execute(select(*wanted).where(CR.c.result_id.in_(chunk))).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=PARSED_COLUMNS, dtype=object).set_index(
        "result_id", drop=False
    )


def _same_content(left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
    """Row-wise: the two results are the same (note aside; readings within 1e-6; None equals None)."""
    same = np.ones(len(left), dtype=bool)
    for name in PARSED_COLUMNS:
        if name == "note":
            continue
        a, b = left[name].to_numpy(dtype=object), right[name].to_numpy(dtype=object)
        a_none = pd.isna(a)
        b_none = pd.isna(b)
        if name in READING_RANGES:
            both = ~a_none & ~b_none
            close = np.zeros(len(a), dtype=bool)
            close[both] = np.abs(a[both].astype(float) - b[both].astype(float)) < 1e-6
            same &= close | (a_none & b_none)
        else:
            b = np.array([v.date() if isinstance(v, datetime) else v for v in b], dtype=object)
            same &= (a_none & b_none) | (~a_none & ~b_none & (a == b))
    return same


def record_results(
    engine: Engine,
    user: User,
    raws: Sequence[dict[str, Any]] | pd.DataFrame,
    *,
    source: str,
    today: date | None = None,
) -> RecordOutcome:
    """Validate, scope-check and store call results; idempotent by result_id. Row order is kept in the
    outcome's quarantine list (index into `raws`). Validation is one pass over the whole frame
    (`parse_results_frame`), writes one bulk insert of results and of their audit rows."""
    today = today or date.today()
    frame = raws.reset_index(drop=True) if isinstance(raws, pd.DataFrame) else pd.DataFrame(list(raws))
    parsed, refused = parse_results_frame(frame, today=today)
    codes: dict[int, str] = {int(i): str(c) for i, c in refused.items()}
    outcome = RecordOutcome(accepted_rows=parsed.iloc[:0], duplicate_rows=parsed.iloc[:0])
    now = datetime.now(UTC)
    with writer(engine).begin() as conn:
        run_id = current_run_id(conn)
        outcome.run_id = run_id
        if run_id is None:
            codes.update(dict.fromkeys(parsed.index.tolist(), "unknown_person"))
            outcome.quarantined = sorted(codes.items())
            return outcome
        places = _places(conn, run_id, parsed["person_id"].tolist())
        found = [places.get(p) for p in parsed["person_id"]]
        allowed = np.array([p is not None and _in_scope(user, p) for p in found], dtype=bool)
        # a scoped caller cannot tell out-of-scope from non-existent
        denied_code = "unknown_person" if user.role == "county_admin" else "out_of_scope"
        codes.update(dict.fromkeys(parsed.index[~allowed].tolist(), denied_code))
        mine = parsed[allowed]
        stored = _existing(conn, mine["result_id"].tolist())
        in_store = mine["result_id"].isin(stored.index).to_numpy()
        first = ~in_store & ~mine["result_id"].duplicated(keep="first").to_numpy()
        # each later row with an ID is compared with the stored result, or with the file's first row
        firsts = mine[first].set_index("result_id", drop=False)
        reference = pd.concat([stored, firsts]).reindex(mine["result_id"])
        same = _same_content(mine, reference)
        accepted = mine[first]
        outcome.accepted_rows = accepted
        outcome.duplicate_rows = mine[~first & same]
        codes.update(dict.fromkeys(mine.index[~first & ~same].tolist(), "result_id_conflict"))
        if len(accepted):
            values = {name: accepted[name].tolist() for name in PARSED_COLUMNS}
            spots = [places[p] for p in values["person_id"]]
            values.update({name: [spot[name] for spot in spots] for name in PLACE})
            constant = {"run_id": run_id, "source": source, "recorded_by": user.name, "recorded_at": now}
            columns = [values[c] if c in values else [constant[c]] * len(spots) for c in COLUMNS]
            if conn.dialect.name == "sqlite":
                columns = [
                    _sqlite_text(v) if c in DATES else v for c, v in zip(COLUMNS, columns, strict=True)
                ]
            rows = list(zip(*columns, strict=True))
            insert_rows(conn, CR, COLUMNS, rows)
        audited = pd.concat(
            [
                pd.DataFrame({"person_id": parsed["person_id"][~allowed], "outcome": "denied"}),
                pd.DataFrame({"person_id": accepted["person_id"], "outcome": "ok"}),
            ]
        ).sort_index(kind="stable")
        if len(audited):
            stamp = now.isoformat(" ") if conn.dialect.name == "sqlite" else now
            insert_rows(
                conn,
                schema.audit,
                AUDIT_COLUMNS,
                [
                    (stamp, user.name, user.role, "call_result", person_id, run_id, result)
                    for person_id, result in zip(audited["person_id"], audited["outcome"], strict=True)
                ],
            )
    outcome.quarantined = sorted(codes.items())
    return outcome


def _sqlite_text(values: list[Any]) -> list[Any]:
    """Dates as the ISO text the sqlite3 module's adapter would store, converted once per distinct value
    instead of once per row (what SQLite holds is the same)."""
    text: dict[Any, Any] = {}
    out = []
    for value in values:
        hit = text.get(value)
        if hit is None:
            if isinstance(value, datetime):
                hit = value.isoformat(" ")
            elif isinstance(value, date):
                hit = value.isoformat()
            else:
                hit = value
            text[value] = hit
        out.append(hit)
    return out


AUDIT_COLUMNS = ["at", "user_name", "role", "endpoint", "person_id", "run_id", "outcome"]


def patient_in_scope(conn: Connection, user: User, person_id: str) -> tuple[str | None, bool]:
    run_id = current_run_id(conn)
    if run_id is None:
        return None, False
    place = _places(conn, run_id, [person_id]).get(person_id)
    return run_id, place is not None and _in_scope(user, place)


def call_history(conn: Connection, person_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            CR.c.result_id,
            CR.c.called_on,
            CR.c.result_type,
            CR.c.remove_reason,
            CR.c.visit_on,
            CR.c.sbp,
            CR.c.dbp,
            CR.c.fpg,
            CR.c.note,
            CR.c.source,
            CR.c.recorded_by,
            CR.c.recorded_at,
        )
        .where(CR.c.person_id == person_id)
        .order_by(CR.c.called_on, CR.c.recorded_at, CR.c.result_id)
    ).mappings()
    return [dict(row) for row in rows]


def results_frame(engine: Engine, until: date) -> pd.DataFrame:
    """Every call result with called_on <= until (the next run's input), in a stable order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(CR)
            .where(CR.c.called_on <= until)
            .order_by(CR.c.person_id, CR.c.called_on, CR.c.recorded_at, CR.c.result_id)
        )
        frame = pd.DataFrame(rows.fetchall(), columns=COLUMNS)
    for column in ("called_on", "visit_on"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


@dataclass
class ImportOutcome:
    rows: int
    accepted: int
    duplicates: int
    quarantined: int
    skipped_blank: int
    by_reason: dict[str, int]
    quarantine_file: str | None
    seconds: float

    def render(self) -> str:
        reasons = ", ".join(f"{code} {n:,}" for code, n in sorted(self.by_reason.items()))
        text = (
            f"{self.rows:,} result rows: {self.accepted:,} accepted, {self.duplicates:,} already recorded, "
            f"{self.quarantined:,} quarantined{f' ({reasons})' if reasons else ''}; "
            f"{self.skipped_blank:,} rows without a result skipped; {self.seconds:.1f} s"
        )
        if self.quarantine_file:
            text += f"\nquarantined rows with their reason: {self.quarantine_file}"
        return text


def cli_user(engine: Engine, name: str | None) -> User:
    """The user a file import is recorded (and scoped) as: a named user of the store, or the county-level
    command line operator when none is named."""
    from risk.errors import RiskUserError

    if name is None:
        import getpass

        return User(name=f"cli:{getpass.getuser()}", role="county_admin")
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(schema.users).where(schema.users.c.name == name, schema.users.c.revoked_at.is_(None))
            )
            .mappings()
            .first()
        )
    if row is None:
        raise RiskUserError(f"no active user '{name}'")
    return User(name=row["name"], role=row["role"], team_id=row["team_id"], township_id=row["township_id"])


def import_results_file(
    path: Any,
    store_url: str,
    *,
    as_user: str | None = None,
    quarantine_out: Any = None,
    today: date | None = None,
) -> ImportOutcome:
    """Import a CSV/XLSX of call results: every row with a result is accepted, already recorded (same
    result_id, same content) or quarantined with a reason code written beside the file."""
    import time
    from pathlib import Path

    from risk.calls.importer import read_result_file
    from risk.serving.store import open_store

    started = time.perf_counter()
    rows, skipped = read_result_file(Path(path))
    engine = open_store(store_url, create=True)
    try:
        user = cli_user(engine, as_user)
        outcome = record_results(engine, user, rows, source="file", today=today)
    finally:
        engine.dispose()
    by_reason: dict[str, int] = {}
    for _, code in outcome.quarantined:
        by_reason[code] = by_reason.get(code, 0) + 1
    written = None
    if outcome.quarantined:
        target = Path(quarantine_out) if quarantine_out else Path(path).with_suffix(".quarantine.csv")
        frame = pd.DataFrame(
            [
                {
                    "row": index + 1,
                    "reason": code,
                    **{k: rows[index].get(k) for k in ("result_id", "person_id", "result")},
                }
                for index, code in outcome.quarantined
            ]
        )
        write_csv(frame, target)
        written = str(target)
    return ImportOutcome(
        rows=len(rows),
        accepted=len(outcome.accepted_rows),
        duplicates=len(outcome.duplicate_rows),
        quarantined=len(outcome.quarantined),
        skipped_blank=skipped,
        by_reason=by_reason,
        quarantine_file=written,
        seconds=time.perf_counter() - started,
    )
