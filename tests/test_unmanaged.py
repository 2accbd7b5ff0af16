"""Unmanaged key population: evidence of hypertension / diabetes outside the registry."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from risk.products.unmanaged import find_unmanaged

AS_OF = date(2024, 12, 31)


def _connection(**tables: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, frame in tables.items():
        con.register(f"{name}_df", frame)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_df")
    return con


def _tables() -> dict[str, pd.DataFrame]:
    persons = pd.DataFrame(
        {
            "person_id": ["bp2", "bp1", "rx", "dx", "reg", "dead", "fpg2", "old"],
            "birth_date": pd.to_datetime(["1950-01-01"] * 8).date,
            "death_date": pd.to_datetime([None, None, None, None, None, "2024-06-01", None, None]).date,
        }
    )
    conditions = pd.DataFrame(
        {
            "person_id": ["reg"],
            "condition": ["hypertension"],
            "enrolled_on": [date(2022, 1, 1)],
            "ended_on": [None],
        }
    )
    vitals = pd.DataFrame(
        {
            "person_id": ["bp2", "bp2", "bp2", "bp1", "reg", "reg", "dead", "dead", "old", "old"],
            "measured_at": pd.to_datetime(
                [
                    "2024-03-01 09:00",
                    "2024-03-01 15:00",
                    "2024-05-01 00:00",
                    "2024-05-01 00:00",
                    "2024-01-01 00:00",
                    "2024-02-01 00:00",
                    "2024-01-01 00:00",
                    "2024-02-01 00:00",
                    "2021-01-01 00:00",
                    "2021-02-01 00:00",  # outside the 730-day lookback
                ]
            ),
            "sbp": [150.0, 152.0, 138.0, 170.0, 160.0, 162.0, 160.0, 165.0, 170.0, 170.0],
            "dbp": [85.0, 86.0, 95.0, 100.0, 95.0, 96.0, 90.0, 95.0, 100.0, 100.0],
        }
    )
    labs = pd.DataFrame(
        {
            "person_id": ["fpg2", "fpg2", "fpg2"],
            "measured_at": pd.to_datetime(["2024-01-10", "2024-04-10", "2025-02-01"]),
            "test": ["fpg", "fpg", "fpg"],
            "value": [7.4, 8.1, 9.0],
        }
    )
    prescriptions = pd.DataFrame(
        {
            "person_id": ["rx", "rx"],
            "dispensed_on": [date(2024, 7, 1), date(2024, 8, 1)],
            "atc_code": ["C08CA01", "C08CA01"],
            "days_supply": [30, 30],
        }
    )
    encounters = pd.DataFrame(
        {
            "person_id": ["dx"],
            "admitted_on": [date(2024, 9, 9)],
            "primary_dx": ["J18.9"],
            "secondary_dx": ["E78.0;E11.9"],
        }
    )
    return dict(
        persons=persons,
        conditions=conditions,
        vitals=vitals,
        labs=labs,
        prescriptions=prescriptions,
        encounters=encounters,
    )


def test_each_kind_of_evidence_is_found_and_only_outside_the_registry():
    found = find_unmanaged(_connection(**_tables()), AS_OF)
    pairs = set(zip(found["person_id"], found["condition"], strict=True))
    # bp2: two raised days (two readings on 2024-03-01 count as one day, plus DBP 95 on 05-01)
    # bp1: only one raised day; reg: registered; dead: died before as_of; old: outside lookback
    assert pairs == {
        ("bp2", "hypertension"),
        ("rx", "hypertension"),
        ("dx", "diabetes_t2"),
        ("fpg2", "diabetes_t2"),
    }
    bp2 = found.set_index("person_id").loc["bp2"]
    assert bp2["raised_days"] == 2 and bp2["raised_max_value"] == 152.0
    fpg2 = found.set_index("person_id").loc["fpg2"]
    assert fpg2["raised_days"] == 2  # the 2025 result is after as_of and ignored
    # the evidence names the matching diagnosis group (E11 from the secondary list), not the primary J18.9
    assert found.set_index("person_id").loc["dx", "dx_example_code"] == "E11"
    assert found.set_index("person_id").loc["rx", "evidence_en"].startswith("2 disease-specific")


def test_no_evidence_gives_empty_frame_with_columns():
    tables = _tables()
    tables["vitals"] = tables["vitals"].iloc[0:0]
    tables["labs"] = tables["labs"].iloc[0:0]
    tables["prescriptions"] = tables["prescriptions"].iloc[0:0]
    tables["encounters"] = tables["encounters"].iloc[0:0]
    found = find_unmanaged(_connection(**tables), AS_OF)
    assert found.empty
    assert {"evidence_zh", "evidence_en"} <= set(found.columns)


def _five_key_order(persons: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """The unmanaged list's order as the nightly job first wrote it: persons merged, five-key sort."""
    return (
        persons.merge(found, on="person_id", how="inner")
        .sort_values(
            ["team_id", "village_id", "evidence_kinds", "person_id", "condition"],
            ascending=[True, True, False, True, True],
            kind="mergesort",
        )
        .reset_index(drop=True)
    )


def test_unmanaged_list_order_is_the_five_key_order_whatever_order_the_rows_come_in():
    import numpy as np

    from risk.products.unmanaged import unmanaged_list

    rng = np.random.default_rng(7)
    n = 400
    persons = pd.DataFrame(
        {
            "person_id": [f"P{i:04d}" for i in rng.permutation(n)],  # not in ID order
            "name": [f"n{i}" for i in range(n)],
            "team_id": rng.choice(["T2", "T1", "T10"], n),
            "village_id": rng.choice(["V3", "V1", "V20", "V2"], n),
        }
    )
    found = pd.DataFrame(
        {
            "person_id": [f"P{i:04d}" for i in rng.choice(n + 50, 300)],  # some persons unknown
            "condition": rng.choice(["hypertension", "diabetes_t2"], 300),
            "evidence_kinds": rng.integers(1, 4, 300),
        }
    ).drop_duplicates(["person_id", "condition"])
    in_order = found.sort_values(["person_id", "condition"]).reset_index(drop=True)
    shuffled = found.sample(frac=1, random_state=3).reset_index(drop=True)
    expected = _five_key_order(persons, found)
    assert len(expected) > 100
    for rows in (in_order, shuffled):
        pd.testing.assert_frame_equal(unmanaged_list(persons, rows), expected)


def _evidence_by_row(row: pd.Series) -> tuple[str, str]:
    """The evidence text of one row, written out as docs/lists.md describes it."""
    zh, en = [], []

    def day(value: object) -> str:
        return pd.Timestamp(value).strftime("%Y-%m-%d")

    if pd.notna(row["raised_days"]):
        n, on = f"{float(row['raised_days']):.0f}", day(row["raised_last_date"])
        if row["condition"] == "hypertension":
            peak = f"{float(row['raised_max_value']):.0f}"
            zh.append(f"{n}天血压升高（最高收缩压{peak}，最近{on}）")
            en.append(f"raised BP on {n} days (max SBP {peak}, last {on})")
        else:
            peak = f"{float(row['raised_max_value']):.1f}"
            zh.append(f"{n}天空腹血糖≥7.0（最高{peak}，最近{on}）")
            en.append(f"FPG >= 7.0 on {n} days (max {peak}, last {on})")
    if pd.notna(row["rx_count"]):
        n, on, atc = f"{float(row['rx_count']):.0f}", day(row["rx_last_date"]), row["rx_example_atc"]
        zh.append(f"专病用药{n}次（{atc}，最近{on}）")
        en.append(f"{n} disease-specific prescriptions ({atc}, last {on})")
    if pd.notna(row["dx_count"]):
        n, on, dx = f"{float(row['dx_count']):.0f}", day(row["dx_last_date"]), row["dx_example_code"]
        zh.append(f"就诊诊断{n}次（{dx}，最近{on}）")
        en.append(f"{n} claims with the diagnosis ({dx}, last {on})")
    return "；".join(zh), "; ".join(en)


def test_evidence_text_is_each_rows_evidence_in_words():
    """Every combination of present and missing evidence (Arrow kernels on values formatted once per
    distinct value), including a row with none, a half-unit maximum and a repeated value."""
    from risk.products.unmanaged import _evidence_text

    on = pd.Timestamp("2024-06-01")
    rows = []
    for raised in (False, True):
        for rx in (False, True):
            for dx in (False, True):
                for condition in ("hypertension", "diabetes_t2"):
                    rows.append(
                        {
                            "condition": condition,
                            "raised_days": 3 if raised else None,
                            "raised_last_date": on if raised else None,
                            "raised_max_value": (152.5 if condition == "hypertension" else 7.25)
                            if raised
                            else None,
                            "rx_count": 2 if rx else None,
                            "rx_last_date": on if rx else None,
                            "rx_example_atc": "C08CA01" if rx else None,
                            "dx_count": 1 if dx else None,
                            "dx_last_date": on if dx else None,
                            "dx_example_code": "E11" if dx else None,
                        }
                    )
    found = pd.DataFrame(rows)
    for column in ("raised_days", "rx_count", "dx_count"):
        found[column] = found[column].astype("Int64")
    for column in ("raised_last_date", "rx_last_date", "dx_last_date"):
        found[column] = pd.to_datetime(found[column])
    zh, en = _evidence_text(found)
    expected = [_evidence_by_row(row) for _, row in found.iterrows()]
    assert zh.tolist() == [z for z, _ in expected] and en.tolist() == [e for _, e in expected]
    assert zh.iloc[0] == "" and "最高收缩压152，" in zh.iloc[-2]  # nothing; 152.5 rounds half to even
    assert str(zh.dtype) == "str"

    fixture = find_unmanaged(_connection(**_tables()), AS_OF)
    assert fixture["evidence_zh"].tolist() == [_evidence_by_row(r)[0] for _, r in fixture.iterrows()]
    assert fixture["evidence_en"].tolist() == [_evidence_by_row(r)[1] for _, r in fixture.iterrows()]
