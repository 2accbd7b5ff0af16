"""Spreadsheet and CSV outputs are inert (OWASP "CSV injection"): a text cell that starts with = + - @, a
tab or a carriage return could be taken as a formula by Excel or WPS when a clinician opens the file, so
it is written with a leading apostrophe, and workbooks are written with every text value as a text cell.
Every XLSX and CSV the project writes goes through this module."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = "=+-@\t\r"
_FORMULA_PATTERN = "^[=+\\-@\t\r]"
ESCAPE = "'"
# xlsxwriter: a str is always a text cell, never a formula, number or link
XLSXWRITER_OPTIONS = {"strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False}


def inert_text(value: Any) -> Any:
    """'=1+1' -> "'=1+1"; anything else (including non-text) unchanged."""
    if isinstance(value, str) and value[:1] in FORMULA_START and value != "":
        return ESCAPE + value
    return value


def restore_text(value: Any) -> Any:
    """The inverse of inert_text, for files the project reads back (filled-in call lists)."""
    if isinstance(value, str) and value[:1] == ESCAPE and value[1:2] != "" and value[1] in FORMULA_START:
        return value[1:]
    return value


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def inert_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells are inert (vectorised; numeric, date and boolean columns untouched)."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not _is_text(series):
            continue
        try:
            starts = series.str.match(_FORMULA_PATTERN, na=False).fillna(False).astype(bool)
        except AttributeError:  # an object column holding no text
            continue
        if starts.any():
            out[column] = series.where(~starts, ESCAPE + series[starts].astype(str))
    if not isinstance(out.columns, pd.RangeIndex):
        out.columns = [inert_text(c) for c in out.columns]
    return out


def inert_table(table: pa.Table) -> pa.Table:
    """The same for an Arrow table (the list CSVs are written by Arrow)."""
    for index, field in enumerate(table.schema):
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        column = table.column(index)
        starts = pc.fill_null(pc.match_substring_regex(column, _FORMULA_PATTERN), False)
        if pc.any(starts).as_py():
            escaped = pc.binary_join_element_wise(
                pa.scalar(ESCAPE, field.type), column, pa.scalar("", field.type)
            )
            table = table.set_column(index, field, pc.if_else(starts, escaped, column))
    return table.rename_columns([inert_text(name) for name in table.column_names])


def write_csv(frame: pd.DataFrame, path: Path, **options: Any) -> None:
    """pandas to_csv of the inert frame (UTF-8 with BOM unless told otherwise, no index)."""
    options.setdefault("index", False)
    options.setdefault("encoding", "utf-8-sig")
    inert_frame(frame).to_csv(path, **options)


def string_writer(sheet: Any) -> Callable[[int, int, str, Any], int]:
    """`sheet.write_string(row, col, text, format)` for a row and column given as numbers: xlsxwriter's
    undecorated _write_string when the installed version has it (the public method only adds the parsing
    of A1 notation around it, which cost the list workers ~8 % of their CPU over 2.4M cells), else the
    public method. The cells written are the same (the fingerprint tests pin every list workbook)."""
    return getattr(sheet, "_write_string", sheet.write_string)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a workbook is built (restored as it was on leaving,
    also on an error). xlsxwriter keeps a tuple per cell, and the collector scanned them again and again
    as they piled up: a quarter of the list workers' CPU at 1M persons. The workbook's own cycles are
    freed by the next collection after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    """One sheet per frame, every text value a text cell (xlsxwriter never turns a str into a formula)."""
    with pd.ExcelWriter(path, engine="xlsxwriter", engine_kwargs={"options": XLSXWRITER_OPTIONS}) as writer:
        for name, frame in sheets.items():
            inert_frame(frame).to_excel(writer, sheet_name=_sheet_name(name), index=False)


def _sheet_name(name: str) -> str:
    return re.sub(r"[\[\]:*?/\\]", "_", str(name))[:31] or "sheet"
