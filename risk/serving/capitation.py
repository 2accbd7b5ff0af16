"""Capitation (小包干) township tables in the serving store: written after `risk report capitation`,
read through the API by analysts (the county), county administrators and township users (their township).

Only aggregates are stored (money and counts per township), never a person."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, inspect, select

from risk.serving import schema
from risk.serving.auth import TEAM_ROLES, User
from risk.serving.store import open_store

C = schema.capitation


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def store_capitation(
    store_url: str | Path,
    run_id: str,
    as_of: date | None,
    year: int,
    rows: list[dict[str, Any]],
    definitions_version: str = "",
) -> int:
    """Replace the stored township rows of (run_id, year). Each row needs `township_id`."""
    engine = open_store(store_url, create=True)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(delete(C).where(C.c.run_id == run_id, C.c.year == year))
            if rows:
                conn.execute(
                    C.insert(),
                    [
                        {
                            "run_id": run_id,
                            "year": year,
                            "township_id": str(row["township_id"]),
                            "as_of": as_of,
                            "stored_at": now,
                            "definitions_version": definitions_version,
                            "payload": json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False),
                        }
                        for row in rows
                    ],
                )
    finally:
        engine.dispose()
    return len(rows)


def read_capitation(conn: Connection, user: User, year: int) -> dict[str, Any] | None:
    """The latest stored table of `year` within the caller's scope; None when none was stored.
    Team roles are not given budgets (PermissionError)."""
    if user.role in TEAM_ROLES:
        raise PermissionError("capitation budgets are for analysts, county and township users")
    if not inspect(conn).has_table(C.name):
        return None
    latest = conn.execute(select(func.max(C.c.stored_at)).where(C.c.year == year)).scalar_one_or_none()
    if latest is None:
        return None
    run_id = conn.execute(
        select(C.c.run_id).where(C.c.year == year, C.c.stored_at == latest).limit(1)
    ).scalar_one()
    query = select(C).where(C.c.year == year, C.c.run_id == run_id).order_by(C.c.township_id)
    if user.role == "township":
        query = query.where(C.c.township_id == user.township_id)
    rows = conn.execute(query).mappings().all()
    if not rows:
        return {"run_id": run_id, "year": year, "as_of": None, "definitions_version": None, "townships": []}
    return {
        "run_id": run_id,
        "year": year,
        "as_of": rows[0]["as_of"],
        "definitions_version": rows[0]["definitions_version"],
        "townships": [json.loads(r["payload"]) for r in rows],
    }
