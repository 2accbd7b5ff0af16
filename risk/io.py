"""Reading an input folder (one file per contract table, `<table>.parquet` or `<table>.csv`).

Everything here turns a user's file problem (missing table, unreadable file, missing required column)
into an InputFileError naming the file and column. Rows are numbered with `source_row`, the 1-based
position of the row in the file: for Parquet the file row order, for CSV the data record number with the
header excluded (equal to the line number minus one unless a quoted field spans lines).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from risk import definitions
from risk.errors import InputFileError
from risk.sql import identifier, literal

TABLE_FORMATS = ("parquet", "csv")


def find_table_file(input_dir: Path, table: str, *, required: bool = True) -> Path | None:
    """The file holding `table` in `input_dir`, or None when absent and not required."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputFileError(str(input_dir), "input folder does not exist or is not a folder")
    found = [input_dir / f"{table}.{fmt}" for fmt in TABLE_FORMATS if (input_dir / f"{table}.{fmt}").exists()]
    if len(found) > 1:
        raise InputFileError(str(found[0]), f"both {found[0].name} and {found[1].name} exist; keep one")
    if found:
        if not found[0].is_file():
            raise InputFileError(str(found[0]), "is not a regular file")
        return found[0]
    if required:
        raise InputFileError(
            str(input_dir / f"{table}.parquet"),
            f"required table '{table}' is missing (expected {table}.parquet or {table}.csv)",
        )
    return None




@dataclass(frozen=True)
class InputTable:
    """An input file opened in DuckDB: its contract columns (with the file's physical types) + source_row."""

    table: str
    path: Path
    format: str
    column_types: dict[str, str]  # contract column name -> DuckDB type of the file column
    file_columns: dict[str, str]  # contract column name -> column name as spelled in the file
    csv_header: tuple[str, ...] = ()

    @property
    def scan_sql(self) -> str:
        """A FROM-clause source yielding the contract columns present, renamed, plus source_row."""
        cols = ", ".join(
            f"{identifier(src)} AS {identifier(name)}" for name, src in self.file_columns.items()
        )
        if self.format == "parquet":
            return (f"(SELECT {cols}, file_row_number + 1 AS source_row "
                    f"FROM read_parquet({literal(self.path)}, file_row_number = true))")
        # DuckDB keeps CSV rows in file order (preserve_insertion_order), so the streaming
        # row_number() over () is the record number; tests/test_validate_io.py checks it.
        return f"(SELECT {cols}, row_number() OVER () AS source_row FROM {self._csv_reader()})"

    def _csv_reader(self) -> str:
        columns = ", ".join(f"{literal(name)}: 'VARCHAR'" for name in self.csv_header)
        return (f"read_csv({literal(self.path)}, header = true, auto_detect = false, "
                f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
                "null_padding = false, encoding = 'utf-8')")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


# DuckDB's file-error messages echo the offending record (sometimes on the same line as the reason), and a
# record holds names, phones and national IDs. Only these fixed phrases and the line number are repeated.
_SAFE_REASONS = (
    r"Value with unterminated quote found",
    r"Expected Number of Columns: \d+ Found: \d+",
    r"Maximum line size of \d+ bytes exceeded",
    r"Invalid unicode \(byte sequence mismatch\) detected",
    r"Invalid unicode",
    r"Invalid Input Error: File .{0,20} too small to be a Parquet file",
    r"No magic bytes found at end of file",
    r"Could not convert",
)
_LINE = re.compile(r"\bLine:? ?(\d+)", re.IGNORECASE)


def duckdb_error_message(exc: Exception) -> str:
    """DuckDB's reason as a fixed phrase plus the line number: never any text taken from the file."""
    text = str(exc)
    reason = next((found.group(0) for pattern in _SAFE_REASONS if (found := re.search(pattern, text))), None)
    line = _LINE.search(text)
    where = f" (line {line.group(1)})" if line else ""
    if reason is None:
        return f"malformed file, {exc.__class__.__name__}{where}"
    return f"{reason}{where}"


def _check_utf8(path: Path, sample: bytes) -> None:
    """County systems often export GBK / GB18030: say so up front instead of failing on some later line
    (only the first MiB is checked; a later bad line is still reported when the table is read)."""
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError:
        try:
            sample.decode("gb18030")
            hint = "it looks like GBK/GB18030; save the CSV as UTF-8"
        except UnicodeDecodeError:
            hint = "save the CSV as UTF-8"
        raise InputFileError(str(path), f"is not UTF-8 text ({hint})") from None


def open_input_table(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> InputTable:
    """Inspect `path` and check every required contract column of `table` is there."""
    spec = definitions.contract().tables[table]
    fmt = path.suffix.lstrip(".").lower()
    header: tuple[str, ...] = ()
    if fmt == "parquet":
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(path)})").fetchall()  # noqa: E501
        except duckdb.Error as exc:
            raise InputFileError(str(path), f"cannot be read as Parquet: {_first_line(exc)}") from None
        found = [(str(row[0]), str(row[1])) for row in described]
    else:
        header = _csv_header(path)
        found = [(name, "VARCHAR") for name in header]
    by_name: dict[str, tuple[str, str]] = {}
    for name, dtype in found:
        key = name.strip().lower()
        if key in by_name and key in spec.columns:
            raise InputFileError(
                str(path), f"two columns '{by_name[key][0]}' and '{name}' name the same contract column "
                "(names are not case-sensitive); keep one", key,
            )
        by_name.setdefault(key, (name, dtype))
    header = _distinct_names(list(header))
    file_columns: dict[str, str] = {}
    column_types: dict[str, str] = {}
    for col in spec.columns.values():
        if col.name in by_name:
            file_columns[col.name], column_types[col.name] = by_name[col.name]
        elif col.required:
            raise InputFileError(str(path), f"required column of table '{table}' is missing", col.name)
    return InputTable(table, path, fmt, column_types, file_columns, header)


ENCODING_SAMPLE_BYTES = 1 << 20


def _csv_header(path: Path) -> tuple[str, ...]:
    try:
        with path.open("rb") as handle:
            first = handle.readline()
            sample = first + handle.read(ENCODING_SAMPLE_BYTES)
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be opened: {exc.strerror}") from None
    if not first.strip():
        raise InputFileError(str(path), "file is empty (a header row is required)")
    _check_utf8(path, sample)
    text = first.decode("utf-8-sig")
    names = next(csv.reader([text]))
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputFileError(str(path), "column appears more than once in the header", dupes[0])
    return tuple(names)


def _distinct_names(names: list[str]) -> tuple[str, ...]:
    """DuckDB column names are not case-sensitive: a later `Note` beside `note` is renamed `Note_2` (both
    are extra columns; two spellings of a contract column are refused in open_input_table)."""
    seen: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 1
        while unique.lower() in seen:
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique.lower())
        out.append(unique)
    return tuple(out)


def read_input_table(input_dir: Path, table: str, *, required: bool = True) -> pd.DataFrame | None:
    """The contract columns of one input table as found in the file (CSV cells as text) plus source_row.

    No row checks: use risk.validate.validate_folder for canonical, typed tables.
    """
    path = find_table_file(input_dir, table, required=required)
    if path is None:
        return None
    con = duckdb.connect()
    try:
        source = open_input_table(con, path, table)
        try:
            return con.execute(f"SELECT * FROM {source.scan_sql} ORDER BY source_row").df()
        except duckdb.Error as exc:
            raise InputFileError(str(path), f"cannot be read: {duckdb_error_message(exc)}") from None
    finally:
        con.close()
