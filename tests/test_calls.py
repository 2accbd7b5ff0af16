"""The follow-up loop (issue 16): call result parsing, the states that steer the next call list, the API
(scope, audit, idempotency), the file import (CSV and the exported workbook itself) and results recorded
while runs are being published."""

from __future__ import annotations

import re
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from risk.calls.definitions import call_definitions
from risk.calls.lists import call_states
from risk.calls.results import InvalidResult, parse_result
from risk.serving import schema
from risk.serving.api import create_app
from risk.serving.auth import User, add_user
from risk.serving.call_results import import_results_file, record_results, results_frame
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")
TODAY = date(2025, 1, 10)


def test_results_accept_codes_chinese_and_english_labels_and_bare_removal_reasons() -> None:
    base = {"person_id": "P1", "called_on": "2025-01-02"}
    assert (
        parse_result({**base, "result": "同意来诊", "visit_on": "2025-01-05"}, today=TODAY).result_type
        == "agreed_to_visit"
    )
    assert (
        parse_result({**base, "result": "Remind to call later"}, today=TODAY).result_type
        == "remind_to_call_later"
    )
    dead = parse_result({**base, "result": "dead"}, today=TODAY)
    assert (dead.result_type, dead.remove_reason) == ("removed", "dead")
    assert (
        parse_result({**base, "result": "移出名单", "remove_reason": "电话无效"}, today=TODAY).remove_reason
        == "invalid_phone"
    )
    visit = parse_result({**base, "result": "visited", "sbp": "128", "dbp": 80}, today=TODAY)
    assert (visit.sbp, visit.dbp, visit.fpg) == (128.0, 80.0, None)
    for raw, code in [
        ({**base, "result": "maybe"}, "unknown_result"),
        ({**base, "result": "removed"}, "missing_remove_reason"),
        ({**base, "result": "agreed_to_visit"}, "missing_visit_on"),
        ({**base, "result": "visited", "sbp": 130}, "missing_readings"),
        ({**base, "result": "visited", "sbp": 400, "dbp": 80}, "reading_out_of_range"),
        ({**base, "result": "dead", "called_on": "2025-02-01"}, "future_call"),
        ({"result": "dead"}, "missing_person_id"),
    ]:
        with pytest.raises(InvalidResult) as caught:
            parse_result(raw, today=TODAY)
        assert caught.value.code == code


def _results(*rows: tuple) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "person_id": p,
                "called_on": date.fromisoformat(d),
                "result_type": t,
                "remove_reason": r,
                "visit_on": date.fromisoformat(v) if v else None,
            }
            for p, d, t, r, v in rows
        ]
    )
    return frame


def test_states_follow_the_policy_of_each_result_type() -> None:
    policy = call_definitions().policy
    people = pd.DataFrame({"person_id": list("ABCDEFGH"), "fu_last_date": [pd.Timestamp("2024-12-01")] * 8})
    failed = [
        ("F", f"2025-01-0{d}", "remind_to_call_later", None, None)
        for d in range(1, 1 + policy.max_failed_attempts)
    ]
    results = _results(
        ("A", "2025-01-02", "agreed_to_visit", None, "2025-01-04"),  # grace ends 01-07 -> missed on 01-10
        ("B", "2025-01-08", "agreed_to_visit", None, "2025-01-12"),  # still awaiting
        ("C", "2025-01-02", "remind_to_call_later", None, None),  # back after 7 days: 01-09 <= 01-10
        ("D", "2025-01-05", "remind_to_call_later", None, None),  # not yet
        ("E", "2024-06-01", "removed", "dead", None),  # permanent even before the episode
        *failed,
        ("G", "2025-01-03", "removed", "refused", None),
        ("H", "2024-11-01", "removed", "refused", None),  # before the last follow-up: a new episode
    )
    states = call_states(people, results, TODAY).set_index("person_id")
    assert states["status"].to_dict() == {
        "A": "missed_visit",
        "B": "awaiting_visit",
        "C": "remind_due",
        "D": "remind_later",
        "E": "removed",
        "F": "home_visit",
        "G": "removed",
        "H": "due",
    }
    assert states.loc["E", "registry_change"] == "dead"
    assert states.loc["F", "home_visit_reason"] == "failed_attempts"
    assert states.loc["F", "attempts"] == policy.max_failed_attempts
    assert states.loc["H", "attempts"] == 0 and states.loc["H", "last_result"] == "拒绝随访"


@pytest.fixture
def served(tmp_path: Path) -> dict:
    run = write_demo_run(tmp_path / "r1", persons=160, seed=1, as_of=date(2024, 12, 31), run_id="r1")
    store = str(tmp_path / "store.db")
    publish_run(run, store)
    engine = open_store(store)
    tokens = {
        "vd": add_user(engine, "vd-a", "village_doctor", team_id="TEAM001"),
        "admin": add_user(engine, "admin", "county_admin"),
    }
    persons = pd.read_parquet(run / "canonical" / "persons.parquet")
    client = TestClient(create_app(store))
    yield {
        "run": run,
        "store": store,
        "engine": engine,
        "tokens": tokens,
        "client": client,
        "persons": persons,
        "tmp": tmp_path,
    }
    client.close()
    engine.dispose()


def _post(ctx: dict, who: str, person_id: str, body: dict):
    return ctx["client"].post(
        f"/api/patients/{person_id}/calls",
        json=body,
        headers={"Authorization": f"Bearer {ctx['tokens'][who]}"},
    )


def test_api_records_in_scope_only_idempotently_and_audits_every_write(served: dict) -> None:
    persons = served["persons"]
    mine = persons[persons["team_id"] == "TEAM001"]["person_id"].iloc[0]
    other = persons[persons["team_id"] == "TEAM002"]["person_id"].iloc[0]
    body = {"result_id": "phone-1", "result": "同意来诊", "called_on": "2025-01-02", "visit_on": "2025-01-06"}
    first = _post(served, "vd", mine, body)
    assert first.status_code == 201 and first.json()["recorded"] is True
    again = _post(served, "vd", mine, body)
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert _post(served, "vd", mine, {**body, "visit_on": "2025-01-09"}).status_code == 409
    assert _post(served, "vd", other, {**body, "result_id": "phone-2"}).status_code == 403
    assert _post(served, "vd", "NO-SUCH", {**body, "result_id": "phone-3"}).status_code == 403
    assert (
        _post(served, "vd", mine, {"result_id": "phone-4", "result": "removed"}).json()["detail"]
        == "missing_remove_reason"
    )
    history = served["client"].get(
        f"/api/patients/{mine}/calls", headers={"Authorization": f"Bearer {served['tokens']['vd']}"}
    )
    assert [c["result_id"] for c in history.json()["calls"]] == ["phone-1"]
    assert (
        served["client"]
        .get(f"/api/patients/{other}/calls", headers={"Authorization": f"Bearer {served['tokens']['vd']}"})
        .status_code
        == 403
    )
    with served["engine"].connect() as conn:
        n_results = conn.execute(select(func.count()).select_from(schema.call_results)).scalar_one()
        audit = conn.execute(
            select(schema.audit.c.person_id, schema.audit.c.outcome).where(
                schema.audit.c.endpoint == "call_result"
            )
        ).all()
    assert n_results == 1
    assert sorted(audit) == sorted([(mine, "ok"), (other, "denied"), ("NO-SUCH", "denied")])


def test_file_import_quarantines_with_reasons_counts_and_is_idempotent(served: dict) -> None:
    ids = served["persons"]["person_id"].tolist()
    path = served["tmp"] / "results.csv"
    pd.DataFrame(
        [
            {"档案号": ids[0], "呼叫结果": "已死亡", "呼叫日期": "2025-01-03"},
            {
                "档案号": ids[1],
                "呼叫结果": "Agreed to visit",
                "约定日期": "2025-01-08",
                "呼叫日期": "2025-01-03",
            },
            {"档案号": ids[2], "呼叫结果": "", "移出原因": "moved", "呼叫日期": "2025-01-03"},
            {"档案号": ids[3], "呼叫结果": "", "呼叫日期": ""},  # not called: skipped
            {"档案号": ids[4], "呼叫结果": "whatever", "呼叫日期": "2025-01-03"},
            {"档案号": "NOBODY", "呼叫结果": "refused", "呼叫日期": "2025-01-03"},
            {"档案号": ids[5], "呼叫结果": "visited", "收缩压": "150", "呼叫日期": "2025-01-03"},
        ]
    ).to_csv(path, index=False, encoding="utf-8-sig")
    first = import_results_file(path, served["store"], today=TODAY)
    assert (first.rows, first.accepted, first.quarantined, first.skipped_blank) == (6, 3, 3, 1)
    assert first.by_reason == {"unknown_result": 1, "unknown_person": 1, "missing_readings": 1}
    quarantine = pd.read_csv(first.quarantine_file)
    assert quarantine["row"].tolist() == [4, 5, 6] and "NOBODY" in quarantine["person_id"].tolist()
    second = import_results_file(path, served["store"], today=TODAY)
    assert (second.accepted, second.duplicates) == (0, 3)
    frame = results_frame(served["engine"], TODAY)
    assert sorted(frame["remove_reason"].dropna()) == ["dead", "moved"]
    assert set(frame["source"]) == {"file"}


@pytest.mark.slow  # publishes runs while writers record results
def test_results_recorded_while_runs_are_published_are_never_lost(served: dict) -> None:
    runs = [
        write_demo_run(served["tmp"] / f"r{i}", persons=160, seed=i, as_of=date(2025, 1, i), run_id=f"r{i}")
        for i in (2, 3, 4)
    ]
    persons = served["persons"]["person_id"].tolist()
    admin = User(name="admin", role="county_admin")
    errors: list[BaseException] = []
    recorded = []

    def writer() -> None:
        try:
            for i in range(60):
                outcome = record_results(
                    served["engine"],
                    admin,
                    [
                        {
                            "result_id": f"c-{i}",
                            "person_id": persons[i % len(persons)],
                            "result": "remind_to_call_later",
                            "called_on": "2025-01-05",
                        }
                    ],
                    source="api",
                    today=TODAY,
                )
                recorded.extend(r.result_id for r in outcome.accepted)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    for run in runs:
        publish_run(run, served["store"], keep_runs=1)  # prunes the older runs' patient rows meanwhile
    thread.join()
    assert not errors
    assert len(recorded) == 60
    assert sorted(results_frame(served["engine"], TODAY)["result_id"]) == sorted(recorded)


def test_call_scripts_formatted_per_column_equal_the_row_by_row_scripts() -> None:
    """Each script is its reason's template (or the default) filled with the row's fields as _fmt shows
    them (missing -> "", integers as digits), as when every row was formatted on its own."""
    from risk.calls.lists import SCRIPT_FIELDS, _fmt, _scripts

    scripts = dict(call_definitions().scripts)
    reason = next(r for r in scripts if r != "default")
    calls = pd.DataFrame(
        {
            "reason": [reason, "no-such-reason", reason, "default"],
            "name": pd.array(["王芳", None, "Li", ""], dtype="str"),
            "last_bp": pd.array(["150/95", "", None, "128/80"], dtype="str"),
            "last_fpg": pd.array([None, "7.2", "", "6.1"], dtype="str"),
            "last_bp_date": pd.array(["2024-06-30", None, "", "2024-01-02"], dtype="str"),
            "days_overdue": pd.array([0, 12, 3, 400], dtype="int64"),
            "next_due_on": pd.array(["2024-07-14", "", None, "2024-12-31"], dtype="str"),
        }
    )
    got = _scripts(calls, scripts)
    for language in ("zh", "en"):
        expected = [
            scripts.get(row["reason"], scripts["default"])[language].format(
                **{k: _fmt(row[k]) for k in SCRIPT_FIELDS}
            )
            for row in calls.to_dict("records")
        ]
        if language == "en":  # an empty field leaves no space before a comma: "Hello, ..." not "Hello , ..."
            expected = [re.sub(r" +([,.;:])", r"\1", text) for text in expected]
        assert got[language] == expected
    assert got["en"][1].startswith("Hello, ") and got["en"][3].startswith("Hello, ")
    assert got["en"][2].startswith("Hello Li, ") and got["zh"][1].startswith("您好，")


def test_printed_call_list_is_a4_one_page_wide_and_says_the_reason_in_words(tmp_path: Path) -> None:
    """The team workbook prints on A4 landscape one page wide, shows only the columns a village doctor
    reads or writes in (the others hidden, still there for the import), rows tall enough for the wrapped
    texts and a handwritten result, and the headline reason as its sentence; calls.csv keeps the code."""
    import json
    from datetime import date

    import openpyxl

    from risk.calls.lists import (
        CALL_COLUMNS,
        PRINTED_WIDTHS,
        REASON_TEXT,
        CallListResult,
        export_call_lists,
        headline_reason,
        headline_reason_zh,
    )

    reasons = json.dumps(
        [
            {"id": "poor_adherence", "tier": "green", "zh": "服药依从性差", "en": "Poor adherence"},
            {"id": "cv_risk_high", "tier": "yellow", "zh": "高危：血压升高伴≥3个危险因素", "en": "High risk"},
        ],
        ensure_ascii=False,
    )
    assert headline_reason(reasons) == "cv_risk_high"
    assert headline_reason_zh(reasons) == "高危：血压升高伴≥3个危险因素"
    assert headline_reason(None) == "default" and headline_reason_zh("[]") == ""
    calls = pd.DataFrame({name: [""] * 3 for name in CALL_COLUMNS}, dtype="str")
    calls["team_id"], calls["village_id"] = "T1", ["V1", "V1", "V2"]
    calls["person_id"] = ["P1", "P2", "P3"]
    calls["tier"] = ["红", "黄", "绿"]
    calls["reason"] = "cv_risk_high"
    calls["script_zh"] = "您好，您的慢病随访时间到了（2024-12-13），请到村卫生室随访。" * 2
    calls[REASON_TEXT] = headline_reason_zh(reasons)
    result = CallListResult(calls, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), 0)
    export_call_lists(result, tmp_path, date(2024, 12, 31))
    csv = pd.read_csv(tmp_path / "calls.csv", dtype=str, encoding="utf-8-sig")
    assert list(csv.columns) == list(CALL_COLUMNS) and set(csv["reason"]) == {"cv_risk_high"}
    (book_path,) = (tmp_path / "xlsx").glob("*.xlsx")
    book = openpyxl.load_workbook(book_path)
    assert book.sheetnames == ["V1", "V2"]
    sheet = book["V1"]
    assert sheet.page_setup.paperSize == 9 and sheet.page_setup.orientation == "landscape"
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.page_setup.fitToWidth in (None, 1) and sheet.page_setup.fitToHeight == 0  # None: Excel's 1
    columns = list(CALL_COLUMNS)
    hidden = {  # a run of like columns is one <col min max> element
        columns[i - 1]
        for dim in sheet.column_dimensions.values()
        if dim.hidden
        for i in range(dim.min, dim.max + 1)
    }
    assert hidden == set(columns) - set(PRINTED_WIDTHS) and "result_id" in hidden
    assert [sheet.cell(2, i + 1).value for i in range(len(columns))] == [
        zh for zh, _ in CALL_COLUMNS.values()
    ]
    assert sheet.cell(4, columns.index("reason") + 1).value == "高危：血压升高伴≥3个危险因素"
    assert sheet.cell(4, columns.index("tier") + 1).fill.fgColor.rgb.endswith("F8CBAD")  # red, as printed
    assert sheet.row_dimensions[4].height >= 2 * 15  # the script wraps to 3+ lines; never under two
    assert sheet.row_dimensions[4].height > sheet.row_dimensions[2].height


def test_the_headline_reason_is_the_most_urgent_then_the_highest_tier() -> None:
    """The call list is ordered by urgency before colour, so its headline reason (and script) is the most
    urgent reason: a green patient referred for glucose is called about the glucose, not "low risk"."""
    import json

    from risk.calls.lists import headline_reason, headline_reason_zh, rule_urgencies
    from risk.tiers.rule_set import load_rule_set

    urgency = rule_urgencies(load_rule_set())
    assert urgency["fpg_uncontrolled_consecutive"] == 2 and urgency["low_or_medium_risk"] == 0

    def reasons(*ids: tuple[str, str]) -> str:
        return json.dumps([{"id": i, "tier": t, "zh": f"{i}（中文）", "en": i} for i, t in ids])

    green_referred = reasons(("low_or_medium_risk", "green"), ("fpg_uncontrolled_consecutive", "green"))
    assert headline_reason(green_referred) == "low_or_medium_risk"  # without urgencies: by tier
    assert headline_reason(green_referred, urgency) == "fpg_uncontrolled_consecutive"
    assert headline_reason_zh(green_referred, urgency) == "fpg_uncontrolled_consecutive（中文）"
    red_review = reasons(("cv_risk_very_high", "red"), ("bp_uncontrolled", "green"))
    assert headline_reason(red_review, urgency) == "bp_uncontrolled"
    emergency = reasons(("danger_symptoms", "red"), ("bp_uncontrolled", "green"))
    assert headline_reason(emergency, urgency) == "danger_symptoms"
    routine = reasons(("cv_risk_high", "yellow"), ("poor_adherence", "green"))
    assert headline_reason(routine, urgency) == "cv_risk_high"  # nothing urgent: the colour's reason


def test_nightly_and_risk_calls_headline_every_call_by_its_most_urgent_reason(
    small_run: Path, tmp_path: Path
) -> None:
    import json

    from pipelines.calls import run_calls
    from risk.calls.lists import rule_urgencies
    from risk.tiers.rule_set import load_rule_set

    urgency = rule_urgencies(load_rule_set())
    tiers = pd.read_parquet(small_run / "tiers.parquet", columns=["person_id", "reasons"])
    reasons = dict(zip(tiers["person_id"], tiers["reasons"], strict=True))
    nightly = pd.read_csv(small_run / "calls" / "calls.csv", dtype=str, encoding="utf-8-sig")
    assert len(nightly) > 0
    for person, code in zip(nightly["person_id"], nightly["reason"], strict=True):
        most = max(urgency.get(r["id"], 0) for r in json.loads(reasons[person]))
        assert urgency.get(code, 0) == most, (code, reasons[person])
    assert (nightly["reason"].map(urgency) > 0).any()  # the fixture has urgent reasons to show it
    date = pd.Timestamp(nightly["list_date"].iloc[0]).date()
    run_calls(small_run, date, tmp_path / "calls", xlsx=False)
    again = pd.read_csv(tmp_path / "calls" / "calls.csv", dtype=str, encoding="utf-8-sig")
    assert again["reason"].tolist() == nightly["reason"].tolist()  # `risk calls` finds the same rule set
