"""The vectorised result import (issue 16 follow-up): the frame parser gives every row exactly the result
or the reason code of the one-row parser, and the store keeps every row accepted, already recorded or
quarantined, with in-file repeats of one result ID treated like a re-import."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk.calls.results import InvalidResult, parse_result, parse_results_frame
from risk.serving.auth import User
from risk.serving.call_results import record_results, results_frame
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")
TODAY = date(2025, 1, 10)
POOLS = {
    "result_id": [None, "", " r-1 ", "r-2", "x" * 65, float("nan")],
    "person_id": ["P1", " P2", "", None, 17, float("nan")],
    "result": [
        "agreed_to_visit",
        "同意来诊",
        "Remind to call later",
        "removed",
        "移出名单",
        "dead",
        "电话无效",
        "visited",
        "maybe",
        "",
        None,
    ],
    "remove_reason": ["", None, "refused", "moved", "搬迁", "nonsense"],
    "visit_on": ["", None, "2025-01-12", "2025/01/12", date(2025, 1, 15), datetime(2025, 1, 16, 9, 30)],
    "called_on": [
        "",
        "2025-01-03",
        "2025-02-01",
        "03/01/2025",
        datetime(2025, 1, 4, 8),
        date(2025, 1, 5),
        None,
    ],
    "sbp": ["", "132", 150, "abc", 400, None, " 128 ", float("nan")],
    "dbp": ["", "84", 90.0, None, 10],
    "fpg": ["", None, "7.2", 55],
    "note": [None, "", "  回电  ", "x" * 600],
}


def _scalar(raw: dict) -> tuple[str, object]:
    try:
        return "ok", parse_result(raw, today=TODAY)
    except InvalidResult as exc:
        return "refused", exc.code


def test_frame_parser_gives_every_row_what_the_row_parser_gives() -> None:
    rng = np.random.default_rng(7)
    raws = [{k: pool[int(rng.integers(0, len(pool)))] for k, pool in POOLS.items()} for _ in range(3000)]
    parsed, refused = parse_results_frame(pd.DataFrame(raws), today=TODAY)
    assert len(parsed) + len(refused) == len(raws)
    assert set(parsed.index).isdisjoint(refused.index)
    seen_codes = set()
    for index, raw in enumerate(raws):
        kind, expected = _scalar(raw)
        if kind == "refused":
            assert refused[index] == expected, (index, raw)
            seen_codes.add(expected)
        else:
            got = parsed.loc[index].to_dict()
            want = expected.as_row()
            assert {k: (None if pd.isna(v) else v) for k, v in got.items()} == want, (index, raw)
    assert len(parsed) > 50
    assert seen_codes >= {
        "missing_person_id",
        "missing_result",
        "unknown_result",
        "missing_remove_reason",
        "unknown_remove_reason",
        "bad_date",
        "future_call",
        "missing_visit_on",
        "reading_out_of_range",
        "missing_readings",
        "result_id_too_long",
    }


def test_store_counts_add_up_with_repeated_ids_in_one_file(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "r1", persons=120, seed=3, as_of=date(2024, 12, 31), run_id="r1")
    store = str(tmp_path / "store.db")
    publish_run(run, store)
    engine = open_store(store)
    ids = pd.read_parquet(run / "tiers.parquet", columns=["person_id"])["person_id"].tolist()
    admin = User(name="admin", role="county_admin")
    rows = [
        {"result_id": "a", "person_id": ids[0], "result": "dead", "called_on": "2025-01-02"},
        {"result_id": "a", "person_id": ids[0], "result": "已死亡", "called_on": "2025-01-02"},  # same
        {"result_id": "a", "person_id": ids[0], "result": "moved", "called_on": "2025-01-02"},  # conflict
        {"result_id": "b", "person_id": "NOBODY", "result": "dead", "called_on": "2025-01-02"},
        {"result_id": "b", "person_id": ids[1], "result": "visited", "sbp": "140", "dbp": "90"},
        {"result_id": "c", "person_id": ids[2], "result": "??"},
        {"person_id": ids[3], "result": "remind_to_call_later", "called_on": "2025-01-03"},
    ]
    first = record_results(engine, admin, rows, source="file", today=TODAY)
    assert [r.result_id for r in first.accepted] == ["a", "b", first.accepted[2].result_id]
    assert first.accepted[2].result_id.startswith("auto-")
    assert [r.result_id for r in first.duplicates] == ["a"]
    assert first.quarantined == [(2, "result_id_conflict"), (3, "unknown_person"), (5, "unknown_result")]
    again = record_results(engine, admin, rows, source="file", today=TODAY)
    assert (len(again.accepted), len(again.duplicates)) == (0, 4)
    assert again.quarantined == first.quarantined
    stored = results_frame(engine, TODAY)
    assert len(stored) == 3 and stored.set_index("result_id").loc["b", "sbp"] == 140.0
    engine.dispose()
