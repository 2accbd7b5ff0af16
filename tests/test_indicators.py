"""Each indicator against values worked out by hand on a tiny county (period 2024Q4 = 1 Oct - 31 Dec 2024).

Hypertension patients (H*), diabetes patients (D*); townships T1 / T2 (persons holds CURRENT township).
  H1  enrolled 2022, Q4 BPs 150/95 (10-10) then 130/80 (12-01)        -> controlled (latest counts)
  H2  enrolled 2022, Q4 BPs 130/80 (11-01) then 145/85 (12-15)        -> not controlled
  H3  enrolled 2022, last BP 2024-09-20 (before Q4), phone follow-up  -> no BP in period: not controlled
  H4  enrolled 2024-11-15 (mid-period), BP 128/78                     -> in denominator, controlled
  H5  died 2024-11-20, BP 120/70 on 10-15                             -> in denominator, controlled
  H6  died 2024-09-01 (before period)                                 -> excluded from Q4
  H7  management ended 2024-06-30                                     -> excluded from Q4
  H8  enrolled 2025-01-05 (after period)                              -> excluded
  H9  moved to T2 (persons says T2), BP 120/80                        -> controlled, counted in T2
  H10 clinic 150/90 (12-01), later HOME 120/70 (12-20)                -> home excluded: not controlled
  H11 BP exactly 140/85                                               -> not controlled (SBP < 140 strict)
  H12 two readings at the same instant 130/80 and 142/80              -> worse one: not controlled
  H13 enrolled 2020, last visit 2023-05-01                            -> lost to follow-up: not controlled
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from risk import definitions
from risk.errors import DefinitionError, InputFileError, RiskUserError
from risk.indicators import compute_indicator, open_run, parse_period, person_rows
from risk.indicators.definitions import indicator_set, parse_indicator_set
from risk.indicators.periods import split_period, trailing_periods
from tests.support.canonical import CanonicalBuilder


def write_canonical(folder: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """The canonical tables of a run folder `folder` holding these rows."""
    CanonicalBuilder.from_rows(tables).write(folder / "canonical")
    return folder


def person(pid: str, township: str = "T1", signed: bool = False, death: str | None = None) -> dict[str, Any]:
    return {
        "person_id": pid,
        "sex": "M",
        "birth_date": "1955-01-01",
        "township_id": township,
        "village_id": f"V{township}",
        "unit_id": f"U{township}",
        "team_id": f"TM{township}",
        "signed_contract": signed,
        "phone": None,
        "death_date": death,
    }


def condition(pid: str, code: str, enrolled: str, ended: str | None = None) -> dict[str, Any]:
    return {
        "person_id": pid,
        "condition": code,
        "diagnosed_on": enrolled,
        "enrolled_on": enrolled,
        "ended_on": ended,
    }


def bp(pid: str, at: str, sbp: float, dbp: float, source: str = "follow_up") -> dict[str, Any]:
    return {"person_id": pid, "measured_at": at, "sbp": sbp, "dbp": dbp, "source": source}


def lab(pid: str, at: str, test: str, value: float) -> dict[str, Any]:
    return {
        "person_id": pid,
        "measured_at": at,
        "test": test,
        "value": value,
        "unit": "%" if test == "hba1c" else "mmol/L",
    }


def fu(pid: str, on: str, code: str = "hypertension", mode: str = "clinic") -> dict[str, Any]:
    return {"person_id": pid, "followed_on": on, "condition": code, "mode": mode}


def enc(
    eid: str, pid: str, on: str, setting: str, level: str, dx: str, sec: str | None, cost: float, fund: float
) -> dict[str, Any]:
    return {
        "encounter_id": eid,
        "person_id": pid,
        "setting": setting,
        "facility_level": level,
        "admitted_on": on,
        "discharged_on": on,
        "primary_dx": dx,
        "secondary_dx": sec,
        "total_cost": cost,
        "fund_paid": fund,
    }


TINY = {
    "persons": [
        person("H1", signed=True),
        person("H2", signed=True),
        person("H3"),
        person("H4"),
        person("H5", death="2024-11-20"),
        person("H6", death="2024-09-01"),
        person("H7"),
        person("H8"),
        person("H9", "T2"),
        person("H10", "T2"),
        person("H11"),
        person("H12", "T2"),
        person("H13"),
        person("D1", signed=True),
        person("D2"),
        person("D3"),
        person("D4"),
    ],
    "conditions": [
        condition("H1", "hypertension", "2022-01-01"),
        condition("H2", "hypertension", "2022-01-01"),
        condition("H3", "hypertension", "2022-01-01"),
        condition("H4", "hypertension", "2024-11-15"),
        condition("H5", "hypertension", "2022-01-01"),
        condition("H6", "hypertension", "2022-01-01"),
        condition("H7", "hypertension", "2022-01-01", ended="2024-06-30"),
        condition("H8", "hypertension", "2025-01-05"),
        condition("H9", "hypertension", "2022-01-01"),
        condition("H10", "hypertension", "2022-01-01"),
        condition("H11", "hypertension", "2022-01-01"),
        condition("H12", "hypertension", "2022-01-01"),
        condition("H13", "hypertension", "2020-01-01"),
        condition("D1", "diabetes_t2", "2022-01-01"),
        condition("D2", "diabetes_t2", "2022-01-01"),
        condition("D3", "diabetes_t2", "2022-01-01"),
        condition("D4", "diabetes_t2", "2022-01-01"),
    ],
    "vitals": [
        bp("H1", "2024-10-10 09:00", 150, 95),
        bp("H1", "2024-12-01 09:00", 130, 80),
        bp("H2", "2024-11-01 09:00", 130, 80),
        bp("H2", "2024-12-15 09:00", 145, 85),
        bp("H3", "2024-09-20 09:00", 120, 70),
        bp("H4", "2024-12-01 09:00", 128, 78),
        bp("H5", "2024-10-15 09:00", 120, 70),
        bp("H9", "2024-11-11 09:00", 120, 80),
        bp("H10", "2024-12-01 09:00", 150, 90, "clinic"),
        bp("H10", "2024-12-20 09:00", 120, 70, "home"),
        bp("H11", "2024-12-02 09:00", 140, 85),
        bp("H12", "2024-12-05 10:00", 130, 80, "clinic"),
        bp("H12", "2024-12-05 10:00", 142, 80, "follow_up"),
        bp("H13", "2023-05-01 09:00", 150, 95),
    ],
    "labs": [
        lab("D1", "2024-10-05 08:00", "fpg", 8.0),
        lab("D1", "2024-12-05 08:00", "fpg", 6.5),
        lab("D1", "2024-12-05 08:00", "hba1c", 7.2),
        lab("D2", "2024-11-05 08:00", "fpg", 7.0),
        lab("D4", "2024-11-05 08:00", "hba1c", 6.8),
    ],
    "follow_ups": [
        # H1: 4 face-to-face in 2024; H2: 3 face-to-face + 1 phone; H3: phone only
        *[fu("H1", d) for d in ("2024-02-01", "2024-05-01", "2024-08-01", "2024-11-01")],
        *[fu("H2", d) for d in ("2024-02-01", "2024-05-01", "2024-08-01")],
        fu("H2", "2024-11-01", mode="phone"),
        fu("H3", "2024-11-05", mode="phone"),
        fu("H4", "2024-12-01", mode="home"),
        *[fu("H5", d) for d in ("2024-02-01", "2024-05-01", "2024-08-01")],
        *[fu("H6", d) for d in ("2024-02-01", "2024-05-01", "2024-08-01")],
        fu("H7", "2024-03-01"),
        fu("H7", "2024-06-01"),
        fu("H9", "2024-11-11"),
        fu("D1", "2024-12-05", "diabetes_t2"),
    ],
    "encounters": [
        enc("E1", "H2", "2024-11-01", "inpatient", "outside_county", "I63.9", None, 8000, 6000),
        enc("E2", "D1", "2024-12-10", "inpatient", "county", "E11.2", "I10;E11.2", 5000, 4000),
        enc("E3", "D1", "2023-05-01", "outpatient", "township", "E11.2", None, 200, 100),
        enc("E4", "H1", "2024-10-20", "outpatient", "village", "I10", "I25.1", 100, 60),
        enc("E5", "H3", "2024-09-01", "inpatient", "county", "I63.9", None, 9000, 7000),
        enc("E6", "H9", "2024-12-01", "outpatient", "outside_county", "I10", None, 300, 150),
    ],
}

Q4 = "2024Q4"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = write_canonical(tmp_path_factory.mktemp("tiny") / "run", TINY)
    tiers = pd.DataFrame(
        {
            "person_id": ["H1", "H2", "H3", "H9", "D1"],
            "as_of": pd.to_datetime(["2024-12-31"] * 5).date,
            "tier": ["red", "yellow", "green", "green", "red"],
        }
    )
    tiers.to_parquet(run_dir / "tiers.parquet", index=False)
    return run_dir


def county_row(run_dir: Path, indicator_id: str, period: str = Q4) -> pd.Series:
    with open_run(run_dir) as run:
        table = compute_indicator(run, indicator_id, period)
    return table.iloc[0]


def members(run_dir: Path, indicator_id: str, period: str = Q4) -> tuple[set[str], set[str]]:
    with open_run(run_dir) as run:
        rows = person_rows(run, indicator_id, period)
    return set(rows["person_id"]), set(rows.loc[rows["numerator"] > 0, "person_id"])


def test_bp_control_chinese_definition(tiny_run: Path) -> None:
    denominator, numerator = members(tiny_run, "bp_control_cn")
    # Managed at some time in Q4: H1-H5, H9-H13 (H6 died before, H7 ended before, H8 enrolled after) = 10.
    assert denominator == {"H1", "H2", "H3", "H4", "H5", "H9", "H10", "H11", "H12", "H13"}
    # Latest non-home BP < 140/90: H1 (130/80), H4 (mid-period enrolee), H5 (died in period), H9 = 4.
    assert numerator == {"H1", "H4", "H5", "H9"}
    row = county_row(tiny_run, "bp_control_cn")
    assert (row.numerator, row.denominator) == (4, 10)
    assert row.value == pytest.approx(0.4)
    # Wilson 95 %, n = 10, p = 0.4: centre (0.4 + 1.96^2/20) / (1 + 1.96^2/10) = 0.4277, half-width 0.2592.
    assert row.ci_low == pytest.approx(0.1682, abs=1e-3)
    assert row.ci_high == pytest.approx(0.6873, abs=1e-3)
    # 2024 uses the 2023 target (>= 60 %), not met.
    assert row.target == pytest.approx(0.60)
    assert row.meets_target is False


def test_bp_control_by_township_uses_current_township(tiny_run: Path) -> None:
    with open_run(tiny_run) as run:
        table = compute_indicator(run, "bp_control_cn", Q4, by=["county", "township"])
    by_unit = table.set_index("unit")
    # T1: H1 H2 H3 H4 H5 H11 H13 = 7, controlled H1 H4 H5 = 3; T2 (H9 moved here): H9 H10 H12 = 3, H9 = 1.
    assert (by_unit.loc["T1", "numerator"], by_unit.loc["T1", "denominator"]) == (3, 7)
    assert (by_unit.loc["T2", "numerator"], by_unit.loc["T2", "denominator"]) == (1, 3)
    assert by_unit.loc["county", "denominator"] == 10


def test_bp_control_followed_variant(tiny_run: Path) -> None:
    denominator, numerator = members(tiny_run, "bp_control_cn_followed")
    # Hypertension follow-up in Q4: H1 (11-01), H2 (phone 11-01), H3 (phone, no BP), H4, H9 = 5.
    assert denominator == {"H1", "H2", "H3", "H4", "H9"}
    assert numerator == {"H1", "H4", "H9"}  # 3 / 5


def test_bp_control_hearts_monthly_definition(tiny_run: Path) -> None:
    denominator, numerator = members(tiny_run, "bp_control_hearts")
    # Reference month Dec 2024, window Oct-Dec. Registered before 1 Oct, alive and managed on 31 Dec, and a
    # visit in 2024 (or registered in it): H1 H2 H3 (BP 09-20 is a visit) H9 H10 H11 H12.
    # Out: H4 (registered 11-15), H5 (died), H13 (lost to follow-up: last visit 2023).
    assert denominator == {"H1", "H2", "H3", "H9", "H10", "H11", "H12"}
    assert numerator == {"H1", "H9"}  # 2 / 7


def test_bp_control_hearts_month_window(tiny_run: Path) -> None:
    # Reference month Nov 2024: window Sep-Nov, registered before 1 Sep. H1 latest 150/95 (10-10): no;
    # H2 130/80 (11-01): yes; H3 120/70 (09-20): yes; H5 alive on 30 Nov? died 11-20: out; H9 yes.
    denominator, numerator = members(tiny_run, "bp_control_hearts", "2024-11")
    assert "H5" not in denominator and "H4" not in denominator
    assert numerator == {"H2", "H3", "H9"}


def test_glucose_control(tiny_run: Path) -> None:
    denominator, numerator = members(tiny_run, "glucose_control_fpg")
    assert denominator == {"D1", "D2", "D3", "D4"}
    # D1 latest FPG 6.5 (earlier 8.0): yes; D2 7.0: no (strict <); D3, D4 no FPG: no -> 1 / 4.
    assert numerator == {"D1"}
    _, numerator = members(tiny_run, "glucose_control_hba1c")
    assert numerator == {"D4"}  # D4 6.8 %: yes; D1 7.2 %: no -> 1 / 4


def test_standardised_management_pro_rated(tiny_run: Path) -> None:
    denominator, numerator = members(tiny_run, "standardised_management_hypertension")
    # Window = 2024 (366 days). Managed at some time in 2024: all but H8 = 12 (H6, H7 included).
    assert denominator == {f"H{i}" for i in range(1, 14)} - {"H8"}
    # H1: 4 face-to-face >= 4. H2: 3 (phone not counted). H4: 47 days -> ceil(4*47/366)=1, has 1.
    # H5: died 11-20, 325 days -> ceil(3.55)=4, has 3: no. H6: died 09-01, 245 days -> ceil(2.68)=3, has 3.
    # H7: ended 06-30, 182 days -> ceil(1.99)=2, has 2. Others: none.
    assert numerator == {"H1", "H4", "H6", "H7"}
    row = county_row(tiny_run, "standardised_management_hypertension")
    assert (row.numerator, row.denominator) == (4, 12)


def test_signing_admission_complication(tiny_run: Path) -> None:
    # Managed chronic in Q4: 10 hypertension + 4 diabetes = 14.
    row = county_row(tiny_run, "signing_rate")
    assert (row.numerator, row.denominator) == (3, 14)  # H1, H2, D1
    _, numerator = members(tiny_run, "admission_rate")
    assert numerator == {"H2", "D1"}  # H3's admission is in September
    _, numerator = members(tiny_run, "complication_incidence")
    # H2 first stroke (I63.9) 11-01; H1 first coronary (secondary I25.1) 10-20; D1's CKD dates from 2023.
    assert numerator == {"H1", "H2"}
    assert county_row(tiny_run, "complication_incidence").numerator == 2


def test_outside_county_share_and_cost(tiny_run: Path) -> None:
    row = county_row(tiny_run, "outside_county_share")
    # Q4 encounters of managed patients: E1 (outside), E2, E4, E6 (outside) -> 2 / 4.
    assert (row.numerator, row.denominator) == (2, 4)
    assert math.isnan(row.ci_low)
    assert row.target == pytest.approx(0.14) and row.meets_target is False
    row = county_row(tiny_run, "cost_per_patient")
    assert row.value == pytest.approx((8000 + 5000 + 100 + 300) / 14)
    assert county_row(tiny_run, "fund_per_patient").value == pytest.approx((6000 + 4000 + 60 + 150) / 14)


def test_cost_by_tier(tiny_run: Path) -> None:
    with open_run(tiny_run) as run:
        table = compute_indicator(run, "cost_per_patient", Q4, by="tier").set_index("unit")
    # red: H1 (100) + D1 (5000) over 2; yellow: H2 8000; green: H3 (0, Sept admission) + H9 300 over 2.
    assert table.loc["red", "value"] == pytest.approx(2550)
    assert table.loc["yellow", "value"] == pytest.approx(8000)
    assert table.loc["green", "value"] == pytest.approx(150)
    assert table.loc["untiered", "persons"] == 14 - 5


def test_periods_over_time(tiny_run: Path) -> None:
    periods = split_period(parse_period("2024"), "quarter")
    with open_run(tiny_run) as run:
        table = compute_indicator(run, "bp_control_cn", periods)
    assert list(table["period"]) == ["2024Q1", "2024Q2", "2024Q3", "2024Q4"]
    # 2024Q3: managed H1-H3, H5, H6 (died 09-01, inside Q3), H9-H13 = 10 (H7 ended 06-30); BP in Q3 only H3.
    q3 = table.set_index("period").loc["2024Q3"]
    assert (q3.numerator, q3.denominator) == (1, 10)


def test_period_parsing() -> None:
    assert parse_period("2024Q4").start.isoformat() == "2024-10-01"
    assert parse_period("2024-02").end.isoformat() == "2024-02-29"
    assert parse_period("2023").end.isoformat() == "2023-12-31"
    assert [p.id for p in trailing_periods(parse_period("2024Q1"), 3)] == ["2023Q3", "2023Q4", "2024Q1"]
    with pytest.raises(RiskUserError, match="not a period"):
        parse_period("2024Q5")


def test_empty_period_gives_a_county_row_without_value(tiny_run: Path) -> None:
    row = county_row(tiny_run, "bp_control_cn", "2010")
    assert row.denominator == 0 and math.isnan(row.value) and row.meets_target is None


def test_unknown_indicator_and_bad_run(tiny_run: Path, tmp_path: Path) -> None:
    with open_run(tiny_run) as run, pytest.raises(RiskUserError, match="unknown indicator"):
        compute_indicator(run, "nope", Q4)
    with pytest.raises(InputFileError, match="not a run folder"):
        open_run(tmp_path)


def test_definitions_are_checked() -> None:
    raw = definitions.indicator_definitions()
    broken = {**raw, "indicators": {"x": {**raw["indicators"]["bp_control_cn"], "denominator": "missing"}}}
    with pytest.raises(DefinitionError, match="unknown cohort"):
        parse_indicator_set(broken)
    # Every indicator names its source, period rule and both languages; control rates carry the targets.
    for indicator in indicator_set().indicators.values():
        assert indicator.source and indicator.period_rule and indicator.zh and indicator.en
    assert indicator_set().get("bp_control_cn").target.for_year(2025) == pytest.approx(0.80)
    assert indicator_set().get("bp_control_cn").target.for_year(2022) is None


def test_generated_indicator_doc_is_current() -> None:
    from risk.indicators.docs import indicators_markdown

    doc = Path(__file__).resolve().parent.parent / "docs" / "indicators.md"
    committed = doc.read_text(encoding="utf-8")
    assert committed == indicators_markdown(), "run `risk docs` to regenerate docs/indicators.md"
