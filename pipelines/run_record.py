"""What the county IT person reads about a run: when it started and ended, its status, every warning as one
readable line, whether the development ID key was used, every version, and the quarantine as files a person
opens (CSV and XLSX next to quarantine.parquet)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger("risk.nightly")

LIBRARIES = ("duckdb", "pandas", "pyarrow", "numpy", "scikit-learn", "sqlglot")
QUARANTINE_HEADERS_ZH = {
    "table": "表",
    "source_row": "原文件行号",
    "person_id": "档案号",
    "reason_code": "原因代码",
    "detail": "说明",
}
# The workbook is for a person finding what to fix at the source: every (table, reason) with its count on
# the first sheet, and its first rows on the second. Each reason's first rows show the pattern; all rows are
# in quarantine.csv / quarantine.parquet. (Writing all 228k rows of the 1M stress county took ~10 CPU s of
# xlsxwriter beside the tiers stage, for a sheet nobody reads to the end.)
XLSX_ROWS_PER_REASON = 1_000


def now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass
class RunRecord:
    """Start time, warnings seen while the run worked, the ID-key state; `fields()` goes into run.json."""

    started_at: str = field(default_factory=now)
    warnings: list[str] = field(default_factory=list)

    @contextmanager
    def collect_warnings(self) -> Iterator[None]:
        """Python warnings raised inside become one log line each (no source file or line) and are kept
        for run.json; the previous warning display is restored on the way out."""
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
            self.add(str(message))

        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = previous

    def extend(self, messages: list[str]) -> None:
        for message in messages:
            self.add(message)

    def add(self, message: str) -> None:
        line = " ".join(message.split())
        if line not in self.warnings:
            self.warnings.append(line)
            log.warning("%s", line)

    def fields(self, id_key: str) -> dict[str, Any]:
        """`id_key`: 'county' or 'development' (risk.privacy.key_kind; never the key itself)."""
        from risk.privacy import DEV_KEY_WARNING

        state = id_key
        if state == "development":
            self.add(DEV_KEY_WARNING)  # every run that used it, not once per process
        return {
            "started_at": self.started_at,
            "ended_at": now(),
            "status": "succeeded with warnings" if self.warnings else "succeeded",
            "warnings": list(self.warnings),
            "id_key": state,
        }


def write_quarantine_exports(folder: Path) -> int:
    """quarantine.csv (UTF-8 with BOM, Chinese headers; every row) and quarantine.xlsx (a summary per table
    and reason, then each reason's first XLSX_ROWS_PER_REASON rows) beside quarantine.parquet; returns the
    number of rows."""
    import pandas as pd

    from risk.products.lists import write_csv

    source = folder / "quarantine.parquet"
    if not source.is_file():
        return 0
    frame = pd.read_parquet(source)
    write_csv(frame.rename(columns=QUARANTINE_HEADERS_ZH), folder / "quarantine.csv")
    by_reason = frame.groupby(["table", "reason_code"], sort=False)
    # the quarantine is in table order, then source row: a reason's first rows are its first in the file
    rank = by_reason.cumcount()
    summary = by_reason.agg(rows=("source_row", "size"), first_row=("source_row", "min")).reset_index()
    # tables in the file's order; in each, the reason with most rows first
    summary = summary.assign(order=pd.factorize(summary["table"])[0]).sort_values(
        ["order", "rows", "reason_code"], ascending=[True, False, True], kind="mergesort"
    )
    _write_xlsx(summary, frame[rank < XLSX_ROWS_PER_REASON], folder / "quarantine.xlsx")
    return len(frame)


def _write_xlsx(summary, rows, path: Path) -> None:  # noqa: ANN001 - pandas frames, imported lazily
    import xlsxwriter

    from risk import definitions
    from risk.spreadsheet import XLSXWRITER_OPTIONS, inert_text

    reasons = definitions.validation_rules()["reasons"]
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, **XLSXWRITER_OPTIONS})
    try:
        head = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1})
        overview = book.add_worksheet("汇总")
        columns = [("表", 14), ("原因代码", 20), ("原因", 30), ("行数", 10), ("首行", 10), ("本表列出", 10)]
        for c, (title, width) in enumerate(columns):
            overview.write_string(0, c, title, head)
            overview.set_column(c, c, width)
        for r, row in enumerate(summary.itertuples(index=False), start=1):
            overview.write_string(r, 0, str(row.table))
            overview.write_string(r, 1, str(row.reason_code))
            overview.write_string(r, 2, str(reasons.get(row.reason_code, {}).get("zh", "")))
            overview.write_number(r, 3, int(row.rows))
            overview.write_number(r, 4, int(row.first_row))
            overview.write_number(r, 5, min(int(row.rows), XLSX_ROWS_PER_REASON))
        note = len(summary) + 2
        overview.write_string(
            note,
            0,
            f"“隔离记录”表每类原因列出前 {XLSX_ROWS_PER_REASON:,} 行；"
            "完整记录见 quarantine.csv / quarantine.parquet。",
        )
        sheet = book.add_worksheet("隔离记录")
        frame = rows.rename(columns=QUARANTINE_HEADERS_ZH)
        for c, column in enumerate(frame.columns):
            sheet.write_string(0, c, str(column), head)
            sheet.set_column(c, c, 40 if column == "说明" else 14)
        for r, row in enumerate(frame.itertuples(index=False), start=1):
            for c, value in enumerate(row):
                if value is None or (isinstance(value, float) and value != value):
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, inert_text(str(value)))  # quarantined text stays inert
    finally:
        book.close()
