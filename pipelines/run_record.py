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
XLSX_MAX_ROWS = 1_048_575  # Excel's row limit less the header row


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
    """quarantine.csv (UTF-8 with BOM, Chinese headers) and quarantine.xlsx beside quarantine.parquet;
    returns the number of rows. The XLSX holds at most Excel's row limit (the CSV holds every row)."""
    import pandas as pd

    from risk.products.lists import write_csv

    source = folder / "quarantine.parquet"
    if not source.is_file():
        return 0
    frame = pd.read_parquet(source)
    people = frame.rename(columns=QUARANTINE_HEADERS_ZH)
    write_csv(people, folder / "quarantine.csv")
    _write_xlsx(people.head(XLSX_MAX_ROWS), folder / "quarantine.xlsx", truncated=len(frame) > XLSX_MAX_ROWS)
    return len(frame)


def _write_xlsx(frame, path: Path, truncated: bool) -> None:
    import xlsxwriter

    from risk.spreadsheet import XLSXWRITER_OPTIONS, inert_text

    book = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            **XLSXWRITER_OPTIONS,
        },
    )
    try:
        sheet = book.add_worksheet("隔离记录")
        head = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1})
        columns = list(frame.columns)
        for c, column in enumerate(columns):
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
        if truncated:
            note = book.add_worksheet("说明")
            note.write_string(0, 0, "行数超过 Excel 上限，完整记录见 quarantine.csv / quarantine.parquet。")
    finally:
        book.close()
