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

import pandas as pd
from sqlalchemy import Connection, Engine, select

from risk.calls.results import CallResult, InvalidResult, parse_result
from risk.serving import schema
from risk.serving.auth import TEAM_ROLES, User
from risk.serving.publish import insert_rows
from risk.serving.store import writer

CR = schema.call_results
P = schema.patients
CHUNK = 500
COLUMNS = [c.name for c in CR.columns]


@dataclass
class RecordOutcome:
    accepted: list[CallResult] = field(default_factory=list)
    duplicates: list[CallResult] = field(default_factory=list)
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason code)
    run_id: str | None = None


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


def _places(conn: Connection, run_id: str, person_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    places: dict[str, dict[str, Any]] = {}
    wanted = set(person_ids)
    if len(wanted) > 20 * CHUNK:  # a big import: one scan of the run beats hundreds of IN lists
        rows = conn.execute(
            select(P.c.person_id, P.c.team_id, P.c.township_id, P.c.village_id).where(P.c.run_id == run_id)
        ).mappings()
        return {row["person_id"]: dict(row) for row in rows if row["person_id"] in wanted}
    for chunk in _chunks(sorted(wanted)):
        rows = conn.execute(
            select(P.c.person_id, P.c.team_id, P.c.township_id, P.c.village_id).where(
                P.c.run_id == run_id, P.c.person_id.in_(chunk)
            )
        ).mappings()
        places.update({row["person_id"]: dict(row) for row in rows})
    return places


def _existing(conn: Connection, result_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(result_ids))):
        rows = conn.execute(select(CR).where(CR.c.result_id.in_(chunk))).mappings()
        found.update({row["result_id"]: dict(row) for row in rows})
    return found


def record_results(
    engine: Engine, user: User, raws: Sequence[dict[str, Any]], *, source: str, today: date | None = None
) -> RecordOutcome:
    """Validate, scope-check and store call results; idempotent by result_id. Row order is kept in the
    outcome's quarantine list (index into `raws`)."""
    today = today or date.today()
    outcome = RecordOutcome()
    parsed: list[tuple[int, CallResult]] = []
    for index, raw in enumerate(raws):
        try:
            parsed.append((index, parse_result(raw, today=today)))
        except InvalidResult as exc:
            outcome.quarantined.append((index, exc.code))
    now = datetime.now(UTC)
    with writer(engine).begin() as conn:
        run_id = current_run_id(conn)
        outcome.run_id = run_id
        if run_id is None:
            outcome.quarantined += [(index, "unknown_person") for index, _ in parsed]
            return outcome
        places = _places(conn, run_id, [r.person_id for _, r in parsed])
        existing = _existing(conn, [r.result_id for _, r in parsed])
        rows, audit = [], []
        for index, result in parsed:
            place = places.get(result.person_id)
            if place is None or not _in_scope(user, place):
                # a scoped caller cannot tell out-of-scope from non-existent
                code = "unknown_person" if user.role == "county_admin" else "out_of_scope"
                outcome.quarantined.append((index, code))
                audit.append(_audit(user, result.person_id, run_id, now, "denied"))
                continue
            before = existing.get(result.result_id)
            if before is not None:
                if result.same_content(before):
                    outcome.duplicates.append(result)
                else:
                    outcome.quarantined.append((index, "result_id_conflict"))
                continue
            existing[result.result_id] = result.as_row()
            row = {
                **result.as_row(),
                "run_id": run_id,
                "team_id": place["team_id"],
                "township_id": place["township_id"],
                "village_id": place["village_id"],
                "source": source,
                "recorded_by": user.name,
                "recorded_at": now,
            }
            rows.append(tuple(row[c] for c in COLUMNS))
            audit.append(_audit(user, result.person_id, run_id, now, "ok"))
            outcome.accepted.append(result)
        if rows:
            insert_rows(conn, CR, COLUMNS, rows)
        if audit:
            names = list(audit[0])
            insert_rows(conn, schema.audit, names, [tuple(row[n] for n in names) for row in audit])
    outcome.quarantined.sort()
    return outcome


def _audit(user: User, person_id: str, run_id: str, at: datetime, outcome: str) -> dict[str, Any]:
    return {
        "at": at,
        "user_name": user.name,
        "role": user.role,
        "endpoint": "call_result",
        "person_id": person_id,
        "run_id": run_id,
        "outcome": outcome,
    }


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
        frame.to_csv(target, index=False, encoding="utf-8-sig")
        written = str(target)
    return ImportOutcome(
        rows=len(rows),
        accepted=len(outcome.accepted),
        duplicates=len(outcome.duplicates),
        quarantined=len(outcome.quarantined),
        skipped_blank=skipped,
        by_reason=by_reason,
        quarantine_file=written,
        seconds=time.perf_counter() - started,
    )
