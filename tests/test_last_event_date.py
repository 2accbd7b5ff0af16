"""last_event_date reads the newest event date from the Parquet footers (issue 19); it must give what a
scan of the rows gives, and scan where the statistics cannot say."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from risk import definitions
from risk.validate.run import last_event_date

EVENT_DATES = definitions.validation_rules()["event_date"]


def _scanned(canonical: Path) -> date | None:
    parts = [
        f"SELECT max(CAST({column} AS DATE)) AS d FROM read_parquet('{canonical / f'{table}.parquet'}')"
        for table, column in EVENT_DATES.items()
    ]
    return duckdb.connect().execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()[0]


def _write(canonical: Path, newest: dict[str, list], **options) -> None:
    canonical.mkdir(parents=True, exist_ok=True)
    for table, column in EVENT_DATES.items():
        values = newest.get(table, [date(2020, 1, 1)])
        kind = pa.timestamp("us") if column == "measured_at" else pa.date32()
        if kind == pa.timestamp("us"):
            values = [
                v if v is None or isinstance(v, datetime) else datetime(v.year, v.month, v.day)
                for v in values
            ]
        pq.write_table(
            pa.table({column: pa.array(values, type=kind)}),
            canonical / f"{table}.parquet",
            row_group_size=2,
            **options,
        )


def test_the_footer_gives_what_a_scan_gives(tmp_path: Path):
    cases = {
        "late_timestamp": {"vitals": [datetime(2024, 3, 1), datetime(2024, 12, 31, 23, 59, 59), None]},
        "newest_in_a_later_row_group": {"encounters": [date(2021, 1, 1), None, None, date(2024, 6, 2)]},
        "empty_table": {"labs": [], "prescriptions": [date(2023, 5, 5)]},
        "all_null_column": {"follow_ups": [None, None, None]},
    }
    for name, newest in cases.items():
        canonical = tmp_path / name
        _write(canonical, newest)
        assert last_event_date(canonical) == _scanned(canonical), name
    assert last_event_date(tmp_path / "late_timestamp") == date(2024, 12, 31)


def test_files_without_statistics_are_scanned(tmp_path: Path):
    canonical = tmp_path / "plain"
    _write(canonical, {"labs": [datetime(2024, 11, 30, 8, 0)]}, write_statistics=False)
    assert last_event_date(canonical) == date(2024, 11, 30) == _scanned(canonical)


def test_no_event_at_all_gives_none(tmp_path: Path):
    canonical = tmp_path / "empty"
    _write(canonical, {table: [] for table in EVENT_DATES})
    assert last_event_date(canonical) is None
