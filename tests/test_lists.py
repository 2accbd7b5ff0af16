"""Priority-list ordering and export."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from risk.products.lists import LIST_COLUMNS, build_priority_list, export_lists, file_stem


def _reasons(*items: tuple[str, str]) -> str:
    reasons = [{"id": rid, "tier": tier, "zh": f"原因{rid}", "en": f"reason {rid}"} for rid, tier in items]
    return json.dumps(reasons, ensure_ascii=False)


@pytest.fixture()
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    people = ["p1", "p2", "p3", "p4", "p5"]
    tiers = pd.DataFrame(
        {
            "person_id": people,
            "tier": ["yellow", "red", "red", "green", "yellow"],
            "tier_rules": ["yellow", "red", "yellow", "green", "yellow"],
            "tier_model": ["green", "red", "red", "green", "yellow"],
            "rule_score": [1.2, 2.5, 1.1, 0.0, 1.2],
            "model_probability": [0.10, 0.30, 0.30, 0.02, 0.10],
            "reasons": [
                _reasons(("bp_uncontrolled_first", "yellow"), ("overdue", "yellow")),
                _reasons(("bp_emergency", "red")),
                _reasons(("fu_overdue", "yellow")),
                _reasons(("controlled", "green")),
                _reasons(("fu_overdue", "yellow")),
            ],
            "next_due_on": [date(2024, 12, 1)] * 5,
            "days_overdue": [30, 0, 5, 0, 10],
        }
    )
    features = pd.DataFrame(
        {
            "person_id": people,
            "team_id": ["TM1", "TM1", "TM1", "TM1", "TM2"],
            "township_id": ["T1"] * 5,
            "unit_id": ["U1", "U1", "U2", "U2", "U3"],
            "village_id": ["V1", "V1", "V2", "V2", "V3"],
            "age": [66.4, 70.0, 58.9, 45.0, 80.0],
            "sex": ["M", "F", "F", "M", "F"],
            "has_hypertension": [True, True, False, True, True],
            "has_diabetes_t2": [False, True, True, False, False],
            "bp_last_sbp": [150.0, 185.0, None, 128.0, 145.0],
            "bp_last_dbp": [92.0, 112.0, None, 80.0, 85.0],
            "bp_last_date": pd.to_datetime(["2024-11-01", "2024-12-20", None, "2024-10-01", "2024-09-01"]),
            "fpg_last": [None, 8.2, 6.1, None, None],
            "fpg_last_date": pd.to_datetime([None, "2024-12-20", "2024-06-01", None, None]),
            "fu_last_date": pd.to_datetime(
                ["2024-11-01", "2024-12-20", "2024-06-01", "2024-10-01", "2024-09-01"]
            ),
        }
    )
    persons = pd.DataFrame(
        {
            "person_id": people,
            "name": ["张伟", "王芳", "李娜", "刘强", "陈静"],
            "phone": ["13800000001", "13800000002", None, "13800000004", "13800000005"],
            "national_id_masked": ["340621********1234"] * 5,
        }
    )
    return tiers, features, persons


def test_priority_list_orders_by_tier_then_risk_then_overdue(frames):
    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    team1 = listing[listing["team_id"] == "TM1"]
    # red p2 and p3 tie on risk 0.30 -> p3 has more days overdue; then yellow p1; then green p4
    assert team1["person_id"].tolist() == ["p3", "p2", "p1", "p4"]
    assert team1["rank"].tolist() == [1, 2, 3, 4]
    assert listing.loc[listing["person_id"] == "p5", "rank"].item() == 1


def test_priority_list_rows_carry_what_a_doctor_needs(frames):
    tiers, features, persons = frames
    row = build_priority_list(tiers, features, persons).set_index("person_id").loc["p2"]
    assert row["last_bp"] == "185/112"
    assert row["last_bp_date"] == "2024-12-20"
    assert row["last_fpg"] == "8.2"
    assert row["national_id_masked"] == "340621********1234"
    assert row["top_reasons"] == "原因bp_emergency"
    assert row["conditions"] == "高血压 糖尿病"


def test_top_reasons_put_worst_first(frames):
    tiers, features, persons = frames
    tiers.loc[0, "reasons"] = _reasons(("a", "yellow"), ("b", "red"), ("c", "green"), ("d", "yellow"))
    row = build_priority_list(tiers, features, persons).set_index("person_id").loc["p1"]
    assert row["top_reasons"].split("；") == ["原因b", "原因a", "原因d"]


def test_risk_falls_back_to_rule_score_without_model(frames):
    tiers, features, persons = frames
    tiers["model_probability"] = float("nan")
    listing = build_priority_list(tiers, features, persons)
    team1 = listing[listing["team_id"] == "TM1"]
    assert team1["person_id"].tolist() == ["p2", "p3", "p1", "p4"]


def test_export_writes_csv_per_group_and_printable_workbook(frames, tmp_path):
    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    unmanaged = pd.DataFrame(
        {"person_id": ["x9"], "condition": ["hypertension"], "evidence_zh": ["2天血压升高"]}
    )
    exported = export_lists(listing, unmanaged, tmp_path, run_date="2024-12-31")

    # file names: the ID's slug plus a short hash of the ID (IDs that slug alike never share a file)
    def names(folder: str, ids: list[str]) -> None:
        written = sorted(p.name for p in (tmp_path / folder).iterdir())
        assert written == sorted(f"{file_stem(i)}.csv" for i in ids)
        assert all(name.startswith(i + "-") for name, i in zip(written, ids, strict=True))

    names("teams", ["TM1", "TM2"])
    names("villages", ["V1", "V2", "V3"])
    names("units", ["U1", "U2", "U3"])
    assert exported.rows == 5 and exported.xlsx_files == 2
    team_csv = pd.read_csv(tmp_path / "teams" / f"{file_stem('TM1')}.csv", encoding="utf-8-sig")
    assert team_csv["档案号"].tolist() == ["p3", "p2", "p1", "p4"]  # every field, Chinese headers
    assert list(team_csv.columns) == [LIST_COLUMNS[c][0] for c in listing.columns]
    village_csv = pd.read_csv(tmp_path / "villages" / f"{file_stem('V1')}.csv", encoding="utf-8-sig")
    assert list(village_csv.columns) == list(listing.columns)
    book = load_workbook(tmp_path / "xlsx" / f"{file_stem('TM1')}.xlsx")
    assert book.sheetnames == ["V1", "V2"]
    sheet = book["V1"]
    assert sheet.page_setup.orientation == "landscape"
    header_row = next(r for r in range(1, 20) if sheet.cell(r, 1).value == "序号")
    assert sheet.print_title_rows.replace("$", "") == f"{header_row}:{header_row}"
    assert [sheet.cell(header_row, c).value for c in range(1, 11)] == [
        "序号",
        "姓名",
        "村",
        "电话",
        "分级",
        "主要原因",
        "最近血压 / 血糖",
        "应随访 / 逾期",
        "电话、随访记录",
        "完成",
    ]
    assert sheet.max_column == 10
    # V1 holds p2 then p1: numbered 1, 2 on the sheet (no gaps from the team-wide rank)
    assert [sheet.cell(header_row + i, 1).value for i in (1, 2)] == [1, 2]
    assert sheet.cell(header_row + 1, 5).value == "红"
    assert "逾期 30 天" in sheet.cell(header_row + 2, 8).value
    assert (tmp_path / "unmanaged_key_population.csv").exists()


def test_csv_has_a_byte_order_mark_dates_and_round_trips(tmp_path):
    from risk.products.lists import write_csv

    frame = pd.DataFrame(
        {
            "person_id": ["p1", "p2"],
            "reasons": ["血压≥180/110, 转诊", 'a "quoted" reason'],
            "seen_on": pd.to_datetime(["2024-06-30", None]),
            "measured_at": pd.to_datetime(["2024-06-30 09:15", "2024-06-29 00:00"]),
            "days": pd.array([3, None], dtype="Int64"),
        }
    )
    write_csv(frame, tmp_path / "x.csv")
    raw = (tmp_path / "x.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "2024-06-30," in text and "2024-06-30 00:00:00" not in text  # a date column stays a date
    assert "2024-06-30 09:15:00" in text  # a real time of day is kept
    back = pd.read_csv(tmp_path / "x.csv", encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert back["reasons"].tolist() == frame["reasons"].tolist()
    assert back["days"].tolist() == ["3", ""] and back["seen_on"].tolist() == ["2024-06-30", ""]


def test_export_of_a_county_with_nobody_to_list_writes_headers_only(frames, tmp_path):
    tiers, features, persons = frames
    listing = build_priority_list(tiers.iloc[:0], features, persons)
    unmanaged = pd.DataFrame({"person_id": pd.Series([], dtype=str), "condition": pd.Series([], dtype=str)})
    exported = export_lists(listing, unmanaged, tmp_path, run_date="2024-12-31")
    assert exported.rows == 0 and exported.xlsx_files == 0
    assert list(pd.read_csv(tmp_path / "priority_all.csv", encoding="utf-8-sig").columns) == list(listing)
    assert [p for p in (tmp_path / "teams").iterdir()] == []


def test_list_column_layout_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "lists.md").read_text(encoding="utf-8")
    for column, (zh, en) in LIST_COLUMNS.items():
        assert f"| {zh} | `{column}` | {en} |" in doc


def test_printed_village_is_the_name_when_the_geography_has_one(frames, tmp_path):
    from openpyxl import load_workbook

    from risk.products.lists import PendingExport

    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    unmanaged = pd.DataFrame({"person_id": pd.Series([], dtype=str)})
    PendingExport(listing, tmp_path, run_date="2024-12-31", workers=1, village_names={"V1": "张庄村"}).finish(
        unmanaged
    )
    book = load_workbook(tmp_path / "xlsx" / f"{file_stem('TM1')}.xlsx")
    assert book.sheetnames == ["V1", "V2"]  # sheets keep the id (stable), the page shows the name
    sheet = book["V1"]
    header_row = next(r for r in range(1, 20) if sheet.cell(r, 1).value == "序号")
    assert sheet.cell(header_row + 1, 3).value == "张庄村"
    assert "张庄村" in sheet.cell(1, 1).value and "张庄村" in sheet.oddHeader.left.text
    assert book["V2"].cell(header_row + 1, 3).value == "V2"  # no name: the id


def _cells_of(path) -> list:
    book = load_workbook(path, read_only=True)
    cells = [(sheet.title, list(sheet.iter_rows(values_only=True))) for sheet in book.worksheets]
    book.close()
    return cells


def _fail(*_args: object) -> None:
    raise RuntimeError("a workbook job failed")


def test_list_workers_write_the_call_workbooks_as_written_in_process(frames, tmp_path):
    """The nightly hands the call lists' team workbooks to the list workers (PendingExport.submit): the
    same files and cells as writing them in this process."""
    from risk.calls.lists import build_call_lists, export_call_lists
    from risk.products.lists import PendingExport

    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    calls = build_call_lists(listing, tiers, None, date(2024, 12, 31))
    assert calls.calls["team_id"].nunique() == 2
    inline = export_call_lists(calls, tmp_path / "inline", date(2024, 12, 31))
    pending = PendingExport(listing, tmp_path / "lists", run_date="2024-12-31", workers=2)
    assert pending.pool is not None
    pooled = export_call_lists(calls, tmp_path / "pooled", date(2024, 12, 31), submit=pending.submit)
    pending.finish(pd.DataFrame({"person_id": pd.Series([], dtype=str)}))
    assert pending.pool is None and inline == pooled
    books = sorted(p.name for p in (tmp_path / "inline" / "xlsx").glob("*.xlsx"))
    assert len(books) == 2 and books == sorted(p.name for p in (tmp_path / "pooled" / "xlsx").glob("*.xlsx"))
    for name in books:
        assert _cells_of(tmp_path / "pooled" / "xlsx" / name) == _cells_of(
            tmp_path / "inline" / "xlsx" / name
        )


def test_a_failed_workbook_job_fails_the_export_and_stops_the_workers(frames, tmp_path):
    import multiprocessing

    from risk.products.lists import PendingExport

    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    before = set(multiprocessing.active_children())
    pending = PendingExport(listing, tmp_path, run_date="2024-12-31", workers=2)
    pending.submit(_fail)
    with pytest.raises(RuntimeError, match="a workbook job failed"):
        pending.finish(pd.DataFrame({"person_id": pd.Series([], dtype=str)}))
    assert pending.pool is None
    assert set(multiprocessing.active_children()) <= before


def test_call_workbook_cells_are_the_values_formatted_and_made_inert():
    from risk.calls.lists import CALL_COLUMNS, _fmt, call_workbook_jobs
    from risk.spreadsheet import inert_text

    calls = pd.DataFrame({name: [f"{name}{i}" for i in range(4)] for name in CALL_COLUMNS})
    calls = calls.astype("str")
    calls["team_id"] = ["T2", "T1", "T2", "T1"]
    calls["village_id"] = ["V2", "V1", "V1", "V1"]
    calls["name"] = pd.Series(["=cmd", None, "+1", "李娜"], dtype="str")
    calls["rank"] = [1, 2, 3, 4]
    calls["attempts"] = pd.Series([0.0, None, 2.0, 1.0])  # not an integer column: formatted per value
    jobs = call_workbook_jobs(calls, Path("out"), date(2024, 12, 31))
    assert [(path.name.split("-")[0], [v for v, _ in groups]) for groups, path, _ in jobs] == [
        ("T1", ["V1"]),
        ("T2", ["V1", "V2"]),
    ]
    rows = {v + t: rows for groups, path, t in jobs for v, rows in groups}
    expected = [[inert_text(_fmt(v)) for v in row] for row in calls.itertuples(index=False)]
    assert rows["V1外呼名单 2024-12-31 T1"] == [expected[1], expected[3]]
    assert rows["V1外呼名单 2024-12-31 T2"] == [expected[2]]
    assert rows["V2外呼名单 2024-12-31 T2"] == [expected[0]]
    name = list(CALL_COLUMNS).index("name")
    assert expected[0][name] == "'=cmd" and expected[1][name] == ""


def test_print_rows_are_the_list_rows_as_text_in_list_order(frames):
    from risk.products.lists import print_rows

    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    listing.loc[1, "village_id"] = None  # a missing village prints as the text of a missing value
    rows = print_rows(listing, "en")
    assert [row.name for row in rows] == listing["name"].fillna("").tolist()
    for row, (_, source) in zip(rows, listing.iterrows(), strict=True):
        assert row.reasons == source["top_reasons_en"] and row.days_overdue == int(source["days_overdue"])
        assert row.phone == ("" if pd.isna(source["phone"]) else source["phone"])
        assert row.village == str(source["village_id"]) and row.bp == source["last_bp"]
    assert rows[1].village == "nan"


def test_starting_the_list_workers_leaves_this_process_collecting_garbage(frames, tmp_path):
    """The workers fork with this process's objects frozen (their collector skips the inherited heap);
    the freeze must not outlive the fork here, or nothing allocated before it would ever be collected."""
    import gc

    from risk.products.lists import PendingExport

    tiers, features, persons = frames
    pending = PendingExport(build_priority_list(tiers, features, persons), tmp_path, "2024-12-31", workers=2)
    try:
        assert pending.pool is not None and gc.get_freeze_count() == 0
    finally:
        pending.finish(pd.DataFrame({"person_id": pd.Series([], dtype=str)}))
    assert len(list((tmp_path / "xlsx").glob("*.xlsx"))) == 2


def test_workbooks_are_built_with_the_collector_paused_and_left_as_it_was(tmp_path):
    """The list workbooks are built without cyclic garbage collections (they rescanned every cell tuple
    as the cells piled up: a quarter of the list workers' CPU); the collector is on again afterwards,
    also after an error, and stays off when it was off."""
    import gc
    import sys

    from risk.calls.lists import CALL_COLUMNS, write_call_workbook
    from risk.products.workbook import PrintRow, PrintSettings, write_team_workbook

    rows = [
        PrintRow(
            f"患者{i}",
            "V1",
            f"1380000{i:04d}",
            "red",
            "原因",
            "150/95",
            "2024-11-01",
            "",
            "",
            "2024-12-01",
            i,
        )
        for i in range(3000)
    ]
    call_rows = [[f"{name}{i}" for name in CALL_COLUMNS] for i in range(2000)]
    collections = []

    def count(phase: str, _info: dict) -> None:  # a collection started inside a workbook writer
        frame = sys._getframe()
        while frame is not None and phase == "start":
            if frame.f_code.co_name in ("write_team_workbook", "write_call_workbook"):
                collections.append(frame.f_code.co_name)
                return
            frame = frame.f_back

    gc.callbacks.append(count)
    try:
        assert gc.isenabled()
        write_team_workbook(rows, tmp_path / "team.xlsx", PrintSettings(team="TM1", run_date="2024-12-31"))
        write_call_workbook([("V1", call_rows)], tmp_path / "calls.xlsx", "外呼名单")
        assert collections == [] and gc.isenabled()
        with pytest.raises(TypeError):
            write_call_workbook([("V1", [[1] * len(CALL_COLUMNS)])], tmp_path / "bad.xlsx", "外呼名单")
        assert gc.isenabled()
        gc.disable()
        try:
            write_call_workbook([("V1", call_rows[:10])], tmp_path / "off.xlsx", "外呼名单")
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        gc.callbacks.remove(count)
    assert load_workbook(tmp_path / "team.xlsx")["V1"].max_row > 3000


def test_list_workers_find_the_team_workbook_jobs_in_their_inherited_memory(frames, tmp_path, monkeypatch):
    """The team workbook jobs reach the forked list workers through the fork, not the pool's queue (their
    pickling cost the main process 1.4 s at 1M persons): what is submitted is the job's number only, the
    workbooks are those written in this process, and the jobs are let go when the export closes."""
    import pickle

    from risk import workers
    from risk.products import lists

    submitted = []
    submit = workers._ForkedPool.submit

    def recording(pool, fn, /, *args, **kwargs):
        submitted.append(len(pickle.dumps((fn, args, kwargs))))
        return submit(pool, fn, *args, **kwargs)

    monkeypatch.setattr(workers._ForkedPool, "submit", recording)
    tiers, features, persons = frames
    listing = build_priority_list(tiers, features, persons)
    unmanaged = pd.DataFrame({"person_id": pd.Series([], dtype=str)})
    inline = export_lists(listing, unmanaged, tmp_path / "inline", "2024-12-31", workers=1)
    pending = lists.PendingExport(listing, tmp_path / "pooled", run_date="2024-12-31", workers=2)
    inherited = dict(getattr(lists, "_INHERITED", {}))
    pooled = pending.finish(unmanaged)
    assert len(submitted) == 2 and max(submitted) < 100  # a function and two numbers, not a team's rows
    assert len(inherited[id(pending)]) == 2
    assert id(pending) not in lists._INHERITED and pooled == inline
    books = sorted((tmp_path / "inline" / "xlsx").glob("*.xlsx"))
    assert len(books) == 2
    for book in books:
        assert _cells_of(tmp_path / "pooled" / "xlsx" / book.name) == _cells_of(book)
