"""Read call results from a CSV or XLSX file (a phone platform's export or the call list itself with its
result columns filled in). Headers may be the column codes, the Chinese or the English headers of
docs/call-lists.md; in a workbook the header rows are found on every sheet (the title row above them is
skipped). Rows with no result are rows not yet called and are skipped, not quarantined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from risk.calls.lists import CALL_COLUMNS
from risk.errors import InputFileError
from risk.spreadsheet import restore_text

_HEADERS = {}
for _code, (_zh, _en) in CALL_COLUMNS.items():
    for _name in (_code, _zh, _en):
        _HEADERS[" ".join(str(_name).strip().lower().replace("_", " ").split())] = _code
IMPORTED = [
    "result_id",
    "person_id",
    "result",
    "remove_reason",
    "visit_on",
    "called_on",
    "sbp",
    "dbp",
    "fpg",
    "note",
]


def _key(value: Any) -> str | None:
    if value is None:
        return None
    return _HEADERS.get(" ".join(str(value).strip().lower().replace("_", " ").split()))


def _rows_from_grid(grid: list[list[Any]]) -> list[dict[str, Any]]:
    header_at = None
    for index, row in enumerate(grid[:6]):
        if sum(_key(v) is not None for v in row) >= 2 and any(_key(v) == "person_id" for v in row):
            header_at = index
            break
    if header_at is None:
        return []
    keys = [_key(v) for v in grid[header_at]]
    start = header_at + 1
    while start < len(grid) and sum(_key(v) is not None for v in grid[start]) >= 2:
        start += 1  # a second header row (English under Chinese)
    rows = []
    for row in grid[start:]:
        record = {k: v for k, v in zip(keys, row, strict=False) if k in IMPORTED}
        if all(v is None or str(v).strip() == "" for v in record.values()):
            continue
        rows.append(record)
    return rows


def read_result_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(rows with a result, rows skipped because nothing was filled in)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    suffix = path.suffix.lower()
    grids: list[list[list[Any]]] = []
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several kinds for a damaged file
            raise InputFileError(str(path), f"not a readable workbook ({type(exc).__name__})") from exc
        for sheet in book.worksheets:
            grids.append([list(row) for row in sheet.iter_rows(values_only=True)])
        book.close()
    elif suffix in (".csv", ".txt"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", header=None)
        except (UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise InputFileError(str(path), f"not a UTF-8 CSV ({type(exc).__name__})") from exc
        grids.append(frame.to_numpy().tolist())
    else:
        raise InputFileError(str(path), "expected a .csv or .xlsx file")
    # cells the project wrote inert ("'=...", risk/spreadsheet.py) read back as they were
    grids = [[[restore_text(value) for value in row] for row in grid] for grid in grids]
    rows, skipped = [], 0
    found_header = False
    for grid in grids:
        records = _rows_from_grid(grid)
        found_header = (
            found_header or bool(records) or any(any(_key(v) == "person_id" for v in row) for row in grid[:6])
        )
        for record in records:
            if (
                str(record.get("result") or "").strip() == ""
                and str(record.get("remove_reason") or "").strip() == ""
            ):
                skipped += 1
                continue
            if str(record.get("result") or "").strip() == "":
                record["result"] = record["remove_reason"]  # a removal written as its reason alone
            rows.append(record)
    if not found_header:
        raise InputFileError(
            str(path), "no header row with a person ID column (档案号 / Person ID / person_id)"
        )
    return rows, skipped
