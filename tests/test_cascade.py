"""The monthly call cascade (issue 16 item 4), hand-counted on a twelve-patient county of two townships.

Month 2025-01. Start run (as of 2024-12-31): due dates and phones below. Results and visits below.

  P01 T1/A/A1 due 2024-12-01 phone   called 01-05 agreed, visit 01-12        -> returned
  P02 T1/A/A1 due 2024-12-21 phone   called 01-06 remind, 01-20 visited      -> returned (visited 14 d)
  P03 T1/A/A2 due 2024-11-02 phone   called 01-10 removed (refused)          -> not returned
  P04 T1/A/A2 due 2024-12-30 no phone                                        -> not contactable
  P05 T1/B/B1 due 2024-12-11 phone   removed (dead) on 2024-12-20            -> not contactable
  P06 T1/B/B1 due 2024-12-16 phone   not called
  P07 T2/C/C1 due 2024-10-01 phone   called 01-03 agreed; visit 01-25 (22 d) -> not returned
  P08 T2/C/C1 due 2024-12-25 phone   called 01-04 agreed; visit 01-19 (15 d) -> returned
  P09 T2/C/C1 due 2025-01-15 (not overdue at start) called 01-20 remind
  P10 T2/C/C2 due 2025-02-01 (not overdue)
  P11 T2/C/C2 due 2024-12-31 phone   called 2025-02-02 (next month)          -> not called
  P12 T2/C/C2 due 2024-12-26 phone   called 01-02 remind, then 01-08 agreed  -> first result remind

overdue at start: P01-P08, P11, P12 = 10 of 12
contactable: minus P04 (no phone), P05 (dead) = 8
called in month (of contactable): P01 P02 P03 P07 P08 P12 = 6   (P09 called but not contactable/overdue)
first call: agreed P01 P07 P08 = 3; remind P02 P12 = 2; removed P03 = 1; visited 0
returned within 15 days: P01 P02 P08 = 3 of 6
days overdue at 2025-01-01: 31, 11, 60, 2, 21, 16, 92, 7, 1, 6 -> median 13.5
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from risk.indicators.cascade import cascade_people, cascade_table
from risk.indicators.periods import parse_period

MONTH = parse_period("2025-01")
PEOPLE = [
    ("P01", "T1", "A", "A1", "2024-12-01", "1"),
    ("P02", "T1", "A", "A1", "2024-12-21", "1"),
    ("P03", "T1", "A", "A2", "2024-11-02", "1"),
    ("P04", "T1", "A", "A2", "2024-12-30", ""),
    ("P05", "T1", "B", "B1", "2024-12-11", "1"),
    ("P06", "T1", "B", "B1", "2024-12-16", "1"),
    ("P07", "T2", "C", "C1", "2024-10-01", "1"),
    ("P08", "T2", "C", "C1", "2024-12-25", "1"),
    ("P09", "T2", "C", "C1", "2025-01-15", "1"),
    ("P10", "T2", "C", "C2", "2025-02-01", "1"),
    ("P11", "T2", "C", "C2", "2024-12-31", "1"),
    ("P12", "T2", "C", "C2", "2024-12-26", "1"),
]
RESULTS = [  # person, called_on, result_type, remove_reason, visit_on
    ("P01", "2025-01-05", "agreed_to_visit", None, "2025-01-12"),
    ("P02", "2025-01-06", "remind_to_call_later", None, None),
    ("P02", "2025-01-20", "visited", None, None),
    ("P03", "2025-01-10", "removed", "refused", None),
    ("P05", "2024-12-20", "removed", "dead", None),
    ("P07", "2025-01-03", "agreed_to_visit", None, "2025-01-10"),
    ("P08", "2025-01-04", "agreed_to_visit", None, "2025-01-10"),
    ("P09", "2025-01-20", "remind_to_call_later", None, None),
    ("P11", "2025-02-02", "agreed_to_visit", None, "2025-02-05"),
    ("P12", "2025-01-02", "remind_to_call_later", None, None),
    ("P12", "2025-01-08", "agreed_to_visit", None, "2025-01-09"),
]
VISITS = [("P01", "2025-01-12"), ("P07", "2025-01-25"), ("P08", "2025-01-19"), ("P03", "2024-12-01")]


def _people() -> pd.DataFrame:
    frame = pd.DataFrame(
        PEOPLE, columns=["person_id", "township_id", "team_id", "village_id", "due", "phone"]
    )
    tiers = frame[["person_id"]].assign(next_due_on=pd.to_datetime(frame["due"]).dt.date, fu_last_date=None)
    results = pd.DataFrame(
        RESULTS, columns=["person_id", "called_on", "result_type", "remove_reason", "visit_on"]
    )
    results["called_on"] = pd.to_datetime(results["called_on"]).dt.date
    results["visit_on"] = pd.to_datetime(results["visit_on"]).dt.date
    results["result_id"] = [f"r{i:02d}" for i in range(len(results))]
    visits = pd.DataFrame(VISITS, columns=["person_id", "visit_date"])
    return cascade_people(MONTH, tiers, frame, results, visits)


def test_cascade_per_person_matches_the_hand_count() -> None:
    people = _people().set_index("person_id")
    assert people.index[people["overdue"]].tolist() == [f"P{i:02d}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 11, 12)]
    assert people.index[people["contactable"]].tolist() == [
        "P01",
        "P02",
        "P03",
        "P06",
        "P07",
        "P08",
        "P11",
        "P12",
    ]
    assert people.index[people["called"]].tolist() == ["P01", "P02", "P03", "P07", "P08", "P12"]
    assert people.loc["P12", "first_result"] == "remind_to_call_later"
    assert people.index[people["returned"]].tolist() == ["P01", "P02", "P08"]
    assert people.loc["P01", "days_overdue"] == 31 and np.isnan(people.loc["P09", "days_overdue"])


def test_cascade_table_counts_per_level_and_suppresses_small_cells() -> None:
    table = cascade_table(_people(), MONTH, min_count=0)
    county = table[table["level"] == "county"].set_index(["step", "result"])
    got = {key: (int(row["numerator"]), int(row["denominator"])) for key, row in county.iterrows()}
    assert got[("overdue_start", "")] == (10, 12)
    assert got[("contactable", "")] == (8, 10)
    assert got[("called", "")] == (6, 8)
    assert got[("first_call", "agreed_to_visit")] == (3, 6)
    assert got[("first_call", "remind_to_call_later")] == (2, 6)
    assert got[("first_call", "removed")] == (1, 6)
    assert got[("first_call", "visited")] == (0, 6)
    assert got[("returned", "")] == (3, 6)
    assert got[("list_completion", "")] == (6, 8)
    assert county.loc[("median_days_overdue", ""), "value"] == 13.5
    teams = table[(table["level"] == "team") & (table["step"] == "called")].set_index("unit")
    assert teams["numerator"].tolist() == [3, 0, 3] and teams["denominator"].tolist() == [3, 1, 4]
    village = table[(table["level"] == "village") & (table["step"] == "returned")].set_index("unit")
    assert village.loc["A1", "numerator"] == 2 and village.loc["C1", "numerator"] == 1
    # k = 2: each township called 3 of 4 contactable (1 not called: hidden), the county 6 of 8 is shown
    hidden = cascade_table(_people(), MONTH, min_count=2)
    towns = hidden[(hidden["level"] == "township") & (hidden["step"] == "called")]
    assert towns["numerator"].isna().all() and set(towns["suppressed"]) == {"primary"}
    county_called = hidden[(hidden["level"] == "county") & (hidden["step"] == "called")]
    assert county_called["numerator"].tolist() == [6]
    assert date(2025, 1, 1) == MONTH.start
