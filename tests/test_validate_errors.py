"""File-level problems stop `risk validate` with exit 2 and one line naming the file and column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.errors import InputFileError
from risk.validate import validate_folder
from tests.support.validate_inputs import AS_OF, good_tables, typed_parquet, write_folder


@pytest.fixture(autouse=True)
def _id_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "test-key")


def _run_cli(input_dir: Path, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", str(input_dir), "--out", str(out), "--as-of", "2024-06-30"])
    return result.exit_code, result.output


def _assert_clean_failure(input_dir: Path, out: Path, *fragments: str) -> str:
    code, output = _run_cli(input_dir, out)
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no staging left
    return lines[0]


def test_missing_required_table(tmp_path: Path) -> None:
    tables = good_tables()
    del tables["vitals"]
    _assert_clean_failure(write_folder(tmp_path / "in", tables), tmp_path / "out", "vitals", "missing")


def test_missing_required_column(tmp_path: Path) -> None:
    tables = good_tables()
    tables["vitals"] = tables["vitals"].drop(columns=["sbp"])
    _assert_clean_failure(write_folder(tmp_path / "in", tables), tmp_path / "out",
                          "vitals.csv", "column 'sbp'", "missing")


def test_column_names_match_case_insensitively(tmp_path: Path) -> None:
    tables = good_tables()
    tables["vitals"] = tables["vitals"].rename(columns={"sbp": "SBP", "dbp": " dbp"})
    result = validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    assert result.tables["vitals"].rows_accepted == 3


def test_csv_with_a_ragged_line(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", good_tables())
    with (folder / "labs.csv").open("a", encoding="utf-8") as handle:
        handle.write("P1,2024-01-01,fpg,6.1,mmol/L,extra\n")
    _assert_clean_failure(folder, tmp_path / "out", "labs.csv", "cannot be read")


def test_csv_that_is_not_utf8(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", good_tables())
    frame = good_tables()["persons"]
    frame.loc[0, "township_id"] = "濉溪镇"
    (folder / "persons.csv").write_bytes(frame.to_csv(index=False).encode("gb18030"))
    _assert_clean_failure(folder, tmp_path / "out", "persons.csv", "not UTF-8", "GBK/GB18030")


@pytest.mark.slow
def test_csv_with_gbk_only_late_in_a_column_that_is_only_copied(tmp_path: Path) -> None:
    """Past the encoding sample and in a column no check reads (a name): still one clean line."""
    folder = write_folder(tmp_path / "in", good_tables())
    frame = good_tables()["persons"]
    many = pd.concat([frame.iloc[[0]]] * 15_000, ignore_index=True)
    many["person_id"] = [f"Q{i}" for i in range(len(many))]
    many.loc[len(many) - 1, "name"] = "张三"
    text = many.to_csv(index=False)
    head, last = text.rsplit("张三", 1)
    assert len(head.encode("utf-8")) > (1 << 20)
    (folder / "persons.csv").write_bytes(head.encode("utf-8") + "张三".encode("gbk") + last.encode("utf-8"))
    _assert_clean_failure(folder, tmp_path / "out", "persons.csv", "cannot be read")


def test_empty_csv(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", good_tables())
    (folder / "conditions.csv").write_bytes(b"")
    _assert_clean_failure(folder, tmp_path / "out", "conditions.csv", "empty")


def test_parquet_that_is_not_parquet(tmp_path: Path) -> None:
    tables = good_tables()
    folder = write_folder(tmp_path / "in", tables)
    (folder / "follow_ups.csv").unlink()
    (folder / "follow_ups.parquet").write_bytes(b"PAR1 this is not a parquet file")
    _assert_clean_failure(folder, tmp_path / "out", "follow_ups.parquet", "cannot be read")


def test_parquet_column_of_the_wrong_physical_type(tmp_path: Path) -> None:
    tables = good_tables()
    folder = write_folder(tmp_path / "in", tables)
    vitals = typed_parquet(tables["vitals"], "vitals")
    vitals["sbp"] = pd.to_datetime(["2024-01-01"] * 3)  # a date where mmHg belongs
    (folder / "vitals.csv").unlink()
    vitals.to_parquet(folder / "vitals.parquet", index=False)
    _assert_clean_failure(folder, tmp_path / "out", "vitals.parquet", "column 'sbp'", "TIMESTAMP", "float")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_text_column_where_no_value_parses_is_a_wrong_type(tmp_path: Path, fmt: str) -> None:
    tables = good_tables()
    tables["vitals"]["dbp"] = ["high", "low", "normal"]
    line = _assert_clean_failure(write_folder(tmp_path / "in", tables, fmt=fmt), tmp_path / "out",
                                 f"vitals.{fmt}", "column 'dbp'", "wrong type")
    assert "float" in line


def test_both_csv_and_parquet_for_a_table(tmp_path: Path) -> None:
    tables = good_tables()
    folder = write_folder(tmp_path / "in", tables)
    tables["labs"].to_parquet(folder / "labs.parquet")
    _assert_clean_failure(folder, tmp_path / "out", "labs", "keep one")


def test_input_folder_that_does_not_exist(tmp_path: Path) -> None:
    _assert_clean_failure(tmp_path / "nowhere", tmp_path / "out", "nowhere", "not a folder")


def test_failed_run_leaves_an_existing_out_untouched(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "good", good_tables())
    out = tmp_path / "out"
    validate_folder(good, out, as_of=AS_OF)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tables = good_tables()
    tables["labs"] = tables["labs"].drop(columns=["unit"])
    with pytest.raises(InputFileError):
        validate_folder(write_folder(tmp_path / "bad", tables), out, as_of=AS_OF)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_rerun_into_a_folder_keeps_other_files(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "good", good_tables())
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    validate_folder(good, out, as_of=AS_OF)
    validate_folder(good, out, as_of=AS_OF)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["canonical", "notes.txt", "quarantine.parquet",
                                                     "validation.json"]


@pytest.mark.slow  # starts a Python process
def test_command_line_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    tables = good_tables()
    tables["encounters"] = tables["encounters"].drop(columns=["primary_dx"])
    folder = write_folder(tmp_path / "in", tables)
    done = subprocess.run(
        [sys.executable, "-m", "risk.cli", "validate", str(folder), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "encounters.csv" in done.stderr and "column 'primary_dx'" in done.stderr


def test_command_line_success_prints_the_accounting(tmp_path: Path) -> None:
    code, output = _run_cli(write_folder(tmp_path / "in", good_tables()), tmp_path / "out")
    assert code == 0, output
    assert "rows read = accepted + quarantined" in output
    assert "vitals" in output


def test_csv_error_message_does_not_echo_the_line(tmp_path: Path) -> None:
    """DuckDB quotes the offending line; a national ID or name must not reach the terminal or logs."""
    folder = write_folder(tmp_path / "in", good_tables())
    frame = good_tables()["persons"]
    frame.loc[0, "township_id"] = "濉溪镇"
    (folder / "persons.csv").write_bytes(frame.to_csv(index=False).encode("gb18030"))
    line = _assert_clean_failure(folder, tmp_path / "out", "persons.csv")
    assert frame.loc[0, "national_id"] not in line
    assert "13800001111" not in line


def test_a_bad_late_table_fails_before_any_long_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from risk.validate import run

    calls: list[str] = []
    original = run._validate_table
    monkeypatch.setattr(run, "_validate_table", lambda *a, **k: calls.append("x") or original(*a, **k))
    tables = good_tables()
    tables["prescriptions"] = tables["prescriptions"].drop(columns=["atc_code"])
    with pytest.raises(InputFileError, match="atc_code"):
        validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    assert calls == []
