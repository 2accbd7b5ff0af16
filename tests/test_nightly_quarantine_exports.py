"""The quarantine CSV/XLSX of a nightly run are written by a forked worker beside the later stages
(pipelines/nightly.py `_quarantine_exports`): the run waits for them, and their failure fails the run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.support.hostile_county import AS_OF, write_hostile_county


def test_quarantine_exports_are_complete_when_the_run_is_published(tmp_path: Path) -> None:
    from pipelines.nightly import NightlyOptions, run_nightly

    out = tmp_path / "run"
    run_nightly(
        NightlyOptions(
            input_dir=write_hostile_county(tmp_path / "in"), as_of=AS_OF, out=out, use_model=False, xlsx=False
        )
    )
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(quarantine) > 0
    assert len(pd.read_csv(out / "quarantine.csv", encoding="utf-8-sig")) == len(quarantine)
    assert len(pd.read_excel(out / "quarantine.xlsx", sheet_name="隔离记录")) == len(quarantine)


def _broken_export(folder: Path) -> int:  # module level: the worker is sent it by name
    raise OSError("disk full while writing quarantine.xlsx")


def test_a_failed_quarantine_export_fails_the_run_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.nightly as nightly

    monkeypatch.setattr(nightly, "write_quarantine_exports", _broken_export)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        nightly.run_nightly(
            nightly.NightlyOptions(
                input_dir=write_hostile_county(tmp_path / "in"),
                as_of=AS_OF,
                out=out,
                use_model=False,
                xlsx=False,
            )
        )
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def _export_after_features(folder: Path) -> int:  # module level: the worker is sent it by name
    from pipelines.run_record import write_quarantine_exports
    from risk.run.folder import FEATURES

    if not (folder / FEATURES).exists():
        raise AssertionError("the quarantine exports started before the feature stage was done")
    return write_quarantine_exports(folder)


def test_the_quarantine_exports_start_after_the_feature_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feature stage keeps both cores busy; the exports (xlsxwriter, one core) run beside the tier and
    list stages instead."""
    import pipelines.nightly as nightly

    monkeypatch.setattr(nightly, "write_quarantine_exports", _export_after_features)
    out = tmp_path / "run"
    nightly.run_nightly(
        nightly.NightlyOptions(
            input_dir=write_hostile_county(tmp_path / "in"), as_of=AS_OF, out=out, use_model=False, xlsx=False
        )
    )
    assert (out / "quarantine.xlsx").exists()


def test_quarantine_workbook_sums_up_every_reason_and_lists_each_reasons_first_rows(tmp_path: Path) -> None:
    """Sheet 汇总: every (table, reason) with its rows and first source row, tables in file order, most rows
    first; sheet 隔离记录: each reason's first rows, at most XLSX_ROWS_PER_REASON; the CSV has every row."""
    from pipelines.run_record import XLSX_ROWS_PER_REASON, write_quarantine_exports

    many = XLSX_ROWS_PER_REASON + 500
    frame = pd.DataFrame(
        {
            "table": ["persons"] + ["vitals"] * (many + 3),
            "source_row": [7] + list(range(1, many + 4)),
            "person_id": ["=P1"] + [f"P{i}" for i in range(many + 3)],
            "reason_code": ["missing_value"]
            + ["sbp_not_above_dbp", "out_of_range"] * 3
            + ["out_of_range"] * (many - 3),
            "detail": "x",
        }
    )
    frame.to_parquet(tmp_path / "quarantine.parquet", index=False)
    assert write_quarantine_exports(tmp_path) == len(frame)
    assert len(pd.read_csv(tmp_path / "quarantine.csv", encoding="utf-8-sig")) == len(frame)
    summary = pd.read_excel(tmp_path / "quarantine.xlsx", sheet_name="汇总", nrows=3)
    assert summary[["表", "原因代码", "行数", "首行"]].values.tolist() == [
        ["persons", "missing_value", 1, 7],
        ["vitals", "out_of_range", many, 2],
        ["vitals", "sbp_not_above_dbp", 3, 1],
    ]
    assert summary["原因"].tolist()[0] == "必填值为空"
    assert summary["本表列出"].tolist() == [1, XLSX_ROWS_PER_REASON, 3]
    rows = pd.read_excel(tmp_path / "quarantine.xlsx", sheet_name="隔离记录", dtype={"档案号": str})
    assert len(rows) == 1 + XLSX_ROWS_PER_REASON + 3
    listed = rows[rows["原因代码"] == "out_of_range"]["原文件行号"].tolist()
    expected = frame[frame["reason_code"] == "out_of_range"]["source_row"].tolist()[:XLSX_ROWS_PER_REASON]
    assert listed == expected  # the first rows in the file, in file order
    assert rows["档案号"].iloc[0] == "'=P1"  # quarantined text stays inert
