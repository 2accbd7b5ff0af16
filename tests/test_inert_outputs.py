"""Spreadsheet and CSV outputs are inert (issue 12, OWASP CSV injection): names such as =HYPERLINK(...)
give no formula cell in any workbook a nightly or a report writes, and no CSV field starts with a
formula character unescaped."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from risk.cli import app
from risk.spreadsheet import FORMULA_START, inert_frame, inert_table, inert_text
from tests.support.hostile_county import AS_OF, FORMULA_NAMES, write_hostile_county


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inert")
    county = write_hostile_county(root / "input")
    run = root / "run"
    done = CliRunner().invoke(
        app, ["nightly", str(county), "--as-of", AS_OF.isoformat(), "--out", str(run), "--no-model"]
    )
    assert done.exit_code == 0, done.output
    reports = root / "reports"
    for args in (
        ["bp_control_cn", "--period", "2024", "--by", "village"],
        ["bp_control_cn", "--period", "2024", "--by", "team"],
        ["tier_mix"],
    ):
        for fmt in ("xlsx", "csv"):
            out = reports / f"{args[0]}-{args[-1]}.{fmt}"
            done = CliRunner().invoke(
                app, ["report", *args, "--run", str(run), "--out", str(out), "--min-count", "0"]
            )
            assert done.exit_code == 0, done.output
    return root


def _formula_like(text: str) -> bool:
    """Starts with a formula character and is not simply a number (a negative rate difference)."""
    if text[:1] == "" or text[0] not in FORMULA_START:
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def test_no_formula_cell_in_any_workbook(outputs: Path) -> None:
    workbooks = sorted(outputs.rglob("*.xlsx"))
    assert len(workbooks) >= 3
    formulas, texts = 0, []
    for path in workbooks:
        book = load_workbook(path)
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    formulas += cell.data_type == "f"
                    if isinstance(cell.value, str):
                        texts.append(cell.value)
    assert formulas == 0
    assert not [t for t in texts if _formula_like(t)]
    assert "'" + FORMULA_NAMES[0] in texts  # the name is kept, as text


def test_no_csv_field_starts_with_a_formula_character(outputs: Path) -> None:
    files = sorted(outputs.rglob("*.csv"))
    files = [f for f in files if "input" not in f.parts]
    assert len(files) >= 5
    fields = [
        field
        for path in files
        for row in csv.reader(path.read_text(encoding="utf-8-sig").splitlines(keepends=True))
        for field in row
    ]
    assert not [f for f in fields if _formula_like(f)]
    assert "'" + FORMULA_NAMES[0] in fields
    assert "'=1+2" in fields  # the village ID


def test_the_helpers_agree_and_keep_other_values() -> None:
    values = [*FORMULA_NAMES, "张三", "", None, "a=b", "'=x"]
    frame = pd.DataFrame({"text": values, "number": range(len(values))})
    expected = [inert_text(v) for v in values]
    assert inert_frame(frame)["text"].tolist()[:7] == expected[:7]
    assert inert_table(pa.Table.from_pandas(frame)).column("text").to_pylist() == expected
    assert expected[: len(FORMULA_NAMES)] == ["'" + v for v in FORMULA_NAMES]
    assert expected[len(FORMULA_NAMES) :] == ["张三", "", None, "a=b", "'=x"]


def test_the_list_workbooks_string_writer_writes_what_write_string_writes(tmp_path):
    """The list workbooks write their cells through string_writer (xlsxwriter's undecorated method, when it
    has one): the same text cells, formats and inert values as the public write_string."""
    import xlsxwriter

    from risk.spreadsheet import XLSXWRITER_OPTIONS, string_writer

    cells = [(0, 0, "=1+1"), (1, 2, "李娜"), (3, 1, "http://x.y"), (2, 3, "0123"), (4, 0, "")]
    for name, writer in (("public", lambda sheet: sheet.write_string), ("fast", string_writer)):
        book = xlsxwriter.Workbook(str(tmp_path / f"{name}.xlsx"), XLSXWRITER_OPTIONS)
        sheet = book.add_worksheet("V1")
        bold = book.add_format({"bold": True})
        write = writer(sheet)
        for row, col, text in cells:
            write(row, col, text, bold if col else None)
        book.close()
    public, fast = (load_workbook(tmp_path / f"{n}.xlsx")["V1"] for n in ("public", "fast"))
    assert [[(c.value, c.data_type, c.font.b) for c in row] for row in fast.iter_rows()] == [
        [(c.value, c.data_type, c.font.b) for c in row] for row in public.iter_rows()
    ]
    assert fast.cell(1, 1).value == "=1+1" and fast.cell(1, 1).data_type == "s"  # text, never a formula

    class OnlyPublic:  # an xlsxwriter without the undecorated method: the public one
        def write_string(self, *args: object) -> int:
            return 0

    sheet = OnlyPublic()
    assert string_writer(sheet) == sheet.write_string
