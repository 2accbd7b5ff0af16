"""Capitation (小包干): definitions, member-months, budget, spend, tiers by month, settlement, O/E.

The small county below is worked by hand (2024: quota 3,700 yuan / person-year, +100 if signed; a person
counts for a month when covered on its 15th).
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk import definitions
from risk.capitation.actuals import attach_tiers, member_months, observed_months, person_months, summarise
from risk.capitation.definitions import load_capitation, parse_capitation
from risk.capitation.expected import ExpectedSpendModel, evaluate_model, regression_scores
from risk.capitation.report import ratio_interval
from risk.capitation.settlement import settle
from risk.errors import DefinitionError
from risk.indicators.run import open_run
from tests.support.canonical import CanonicalBuilder

RAW = definitions.load_yaml(definitions.definition_path("capitation.yaml"))


def _county(tmp_path: Path) -> Path:
    b = CanonicalBuilder()
    # full year, signed: 12 months x (3,700 + 100) / 12
    b.person("FULL", signed_contract=True).condition("FULL", enrolled_on="2020-01-01")
    # enrolled 10 March (before the 15th): March..December = 10 months, unsigned
    b.person("MID", signed_contract=False).condition("MID", "diabetes_t2", enrolled_on="2024-03-10")
    # enrolled 20 March (after the 15th): April..December = 9 months, unsigned
    b.person("LATE", signed_contract=False).condition("LATE", enrolled_on="2024-03-20")
    # died 14 June: January..May = 5 months; died 16 June: January..June = 6 months
    b.person("DIED14", signed_contract=False, death_date="2024-06-14").condition("DIED14")
    b.person("DIED16", signed_contract=False, death_date="2024-06-16").condition("DIED16")
    # moved away: management ended 1 September -> January..August = 8 months, other township
    b.person("MOVED", signed_contract=True, township_id="T02").condition("MOVED", ended_on="2024-09-01")
    # two pilot conditions, one ended: still covered all year
    b.person("BOTH", signed_contract=True, township_id="T02")
    b.condition("BOTH", "hypertension", enrolled_on="2019-05-01", ended_on="2022-01-01")
    b.condition("BOTH", "diabetes_t2", enrolled_on="2021-07-01")
    # not a pilot condition: never counts
    b.person("COPD").condition("COPD", "copd")
    # spend
    b.encounter(
        "FULL",
        "2024-02-03",
        setting="inpatient",
        facility_level="county",
        fund_paid=1000.0,
        total_cost=1500.0,
    )
    b.encounter("FULL", "2024-05-20", facility_level="outside_county", fund_paid=100.0, total_cost=150.0)
    b.encounter("FULL", "2023-12-30", fund_paid=999.0, total_cost=999.0)  # previous year
    b.encounter("DIED14", "2024-06-10", fund_paid=500.0, total_cost=600.0)  # June does not count
    b.encounter("MOVED", "2024-08-31", fund_paid=200.0, total_cost=300.0)  # August counts
    b.encounter("MOVED", "2024-10-02", fund_paid=700.0, total_cost=900.0)  # after moving: not counted
    b.encounter("COPD", "2024-04-01", setting="inpatient", fund_paid=5000.0, total_cost=6000.0)
    return b.write(tmp_path / "run" / "canonical").parent


@pytest.fixture()
def county(tmp_path: Path) -> Path:
    return _county(tmp_path)


def _months(run_dir: Path, **kwargs) -> pd.DataFrame:
    with open_run(run_dir) as run:
        return member_months(run.con, load_capitation(), 2024, **kwargs)


def test_member_months_mid_year_enrolment_death_and_moving_away(county: Path) -> None:
    mm = _months(county).groupby("person_id")["weight"].sum().to_dict()
    assert mm == {"FULL": 12, "MID": 10, "LATE": 9, "DIED14": 5, "DIED16": 6, "MOVED": 8, "BOTH": 12}
    first = _months(county).groupby("person_id")["month"].min()
    assert first["MID"] == 3 and first["LATE"] == 4


def test_member_months_daily_rule(county: Path) -> None:
    defs = parse_capitation({**RAW, "partial_month": "daily"})
    with open_run(county) as run:
        mm = member_months(run.con, defs, 2024).groupby("person_id")["weight"].sum()
    assert mm["MID"] == pytest.approx(22 / 31 + 9)  # 10..31 March covered
    assert mm["DIED14"] == pytest.approx(5 + 13 / 30)  # 1..13 June
    assert mm["MOVED"] == pytest.approx(8)  # 31 August is the last covered day


def test_member_months_ignore_events_after_as_of(county: Path) -> None:
    # as of 31 May the death on 14 June and the move on 1 September are not known yet
    mm = _months(county, known_on=date(2024, 5, 31)).groupby("person_id")["weight"].sum()
    assert mm["DIED14"] == 12 and mm["MOVED"] == 12
    assert "MID" in mm and "LATE" in mm  # enrolled in March, before as_of


def test_budget_with_and_without_signing(county: Path) -> None:
    budget = _months(county).groupby("person_id")["budget"].sum()
    assert budget["FULL"] == pytest.approx(3800.0)  # signed: 3,700 + 100
    assert budget["MID"] == pytest.approx(10 * 3700 / 12)  # unsigned
    assert budget["MOVED"] == pytest.approx(8 * 3800 / 12)
    defs = load_capitation()
    with open_run(county) as run:
        b2021 = member_months(run.con, defs, 2021).groupby("person_id")["budget"].sum()
    assert b2021["FULL"] == pytest.approx(3112 + 100)


def test_spend_counts_only_in_member_months(county: Path) -> None:
    defs = load_capitation()
    with open_run(county) as run:
        rows, note = person_months(
            run.con, defs, 2024, 12, pd.DataFrame(columns=["person_id", "as_of", "tier"])
        )
    spend = rows.groupby("person_id")["spend"].sum()
    assert spend["FULL"] == pytest.approx(1100.0)
    assert spend["DIED14"] == 0.0  # June is not a member-month
    assert spend["MOVED"] == pytest.approx(200.0)
    assert "COPD" not in set(rows["person_id"])
    by = summarise(rows, "township_id", 12).set_index("township_id")
    assert by.loc["T01", "spend"] == pytest.approx(1100.0)
    assert by.loc["T01", "spend_outside"] == pytest.approx(100.0)
    assert by.loc["T01", "member_months"] == 12 + 10 + 9 + 5 + 6
    assert by.loc["T01", "pmpm"] == pytest.approx(1100.0 / 42)
    budget_t01 = 3800 + (10 + 9 + 5 + 6) * 3700 / 12
    assert by.loc["T01", "burn_rate"] == pytest.approx(1100.0 / budget_t01)
    assert "no tiers" in note


def test_tier_held_each_month_from_run_history() -> None:
    rows = pd.DataFrame({"person_id": ["A"] * 12, "month": range(1, 13)})
    history = pd.DataFrame(
        {"person_id": ["A", "A"], "as_of": [date(2024, 3, 31), date(2024, 6, 30)], "tier": ["red", "green"]}
    )
    out, note = attach_tiers(rows, history, 2024)
    tiers = out.set_index("month")["tier"]
    assert list(tiers.loc[1:6]) == ["red"] * 6  # Jan-Mar precede the first run; Apr-Jun from 31 March
    assert list(tiers.loc[7:12]) == ["green"] * 6
    assert "precede the first run" in note
    single, note = attach_tiers(rows, history.iloc[:1], 2024)
    assert set(single["tier"]) == {"red"} and "one run only" in note


def test_observed_months() -> None:
    assert observed_months(2024, date(2024, 9, 30)) == 9
    assert observed_months(2024, date(2024, 9, 29)) == 8
    assert observed_months(2024, date(2025, 1, 5)) == 12
    assert observed_months(2024, date(2023, 12, 31)) == 0


@pytest.mark.parametrize(
    ("year", "split", "county_share", "town", "village"),
    [(2021, None, 300, 500, 200), (2022, None, 200, 400, 400), (2022, "medical_community", 600, 300, 100)],
)
def test_surplus_split_by_year(year, split, county_share, town, village) -> None:
    defs = load_capitation()
    out = settle(10_000, 9_000, defs.split(year, split), defs.year(year).overspend)
    assert out["kept"] == pytest.approx(1000)
    assert (out["county"], out["township"], out["village"]) == pytest.approx((county_share, town, village))


def test_surplus_with_assessment_coefficient() -> None:
    defs = load_capitation()
    out = settle(10_000, 9_000, defs.split(2021), defs.year(2021).overspend, coefficient=0.8)
    assert out["kept"] == pytest.approx(800) and out["to_fund"] == pytest.approx(200)
    assert out["township"] == pytest.approx(400)


@pytest.mark.parametrize("year", [2021, 2022, 2024])
def test_deficit_shared_within_the_cap_and_borne_beyond(year) -> None:
    defs = load_capitation()
    split, rule = defs.split(year), defs.year(year).overspend
    small = settle(10_000, 10_600, split, rule)  # 600 overspend, all reasonable (cap 10 % = 1,000)
    assert small["fund_bears"] == pytest.approx(300) and small["unit_bears"] == pytest.approx(300)
    assert small["township"] == pytest.approx(-300 * split.township)
    large = settle(10_000, 11_500, split, rule)  # 1,500: 1,000 reasonable (half each) + 500 unit alone
    assert large["reasonable_overspend"] == pytest.approx(1000)
    assert large["fund_bears"] == pytest.approx(500) and large["unit_bears"] == pytest.approx(1000)
    assert large["county"] + large["township"] + large["village"] == pytest.approx(-1000)


def test_observed_over_expected_with_interval() -> None:
    point, low, high = ratio_interval(np.array([100.0, 300.0, 0.0, 200.0]), np.array([150.0] * 4))
    assert point == pytest.approx(1.0)
    assert low < 1.0 < high
    rng = np.random.default_rng(1)
    expected = np.full(2000, 100.0)
    observed = rng.poisson(150, 2000).astype(float)  # 1.5 x expected
    point, low, high = ratio_interval(observed, expected)
    assert 1.45 < low < point < high < 1.55


def _people(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "person_id": [f"P{i}" for i in range(n)],
            "age": rng.uniform(35, 90, n),
            "sex": rng.choice(["M", "F"], n),
            "has_hypertension": rng.random(n) < 0.8,
            "has_diabetes_t2": rng.random(n) < 0.3,
            "cx_count": rng.poisson(0.3, n).astype(float),
            "enc_fund_paid_12m": rng.gamma(0.5, 1500, n),
            "tier": rng.choice(["red", "yellow", "green"], n),
        }
    )
    mean = 200 + 30 * (frame["age"] - 35) + 1500 * frame["cx_count"] + 0.5 * frame["enc_fund_paid_12m"]
    return frame, rng.poisson(mean / 50) * 50.0


def test_expected_spend_model_beats_the_county_mean_and_is_calibrated() -> None:
    train, y = _people(3000, 1)
    later, y_later = _people(1500, 2)
    model, evaluation = evaluate_model(train, y, later, y_later)
    table = evaluation.table.set_index(["window", "method"])
    for window in ("held-out persons", "later year"):
        assert table.loc[(window, "full"), "mae"] < table.loc[(window, "county_mean"), "mae"]
        assert table.loc[(window, "full"), "r2"] > table.loc[(window, "demographic"), "r2"] > 0.05
        assert abs(table.loc[(window, "full"), "predicted_over_observed"] - 1) < 0.1
    assert isinstance(model, ExpectedSpendModel)
    assert set(evaluation.calibration["decile"]) == set(range(1, 11))
    # the demographic variant never sees prior spend
    assert "enc_fund_paid_12m" not in model.columns_["demographic"]
    assert "enc_fund_paid_12m" in model.columns_["full"]


def test_expected_spend_model_skips_a_feature_no_patient_has() -> None:
    """A county whose records lack a measurement altogether (an all-missing feature column) still gets
    expected spend: the column is left out (scikit-learn's gradient boosting failed on it, and the county
    overview with it)."""
    train, y = _people(600, 3)
    train["waist_cm"] = np.nan
    model = ExpectedSpendModel().fit(train, y)
    assert "waist_cm" not in model.columns_["full"] and "cx_count" in model.columns_["full"]
    predicted = model.predict(train.assign(waist_cm=80.0))  # a later value does not matter to it
    assert predicted["full"].notna().all() and (predicted["full"] >= 0).all()


def test_regression_scores_by_hand() -> None:
    scores = regression_scores(np.array([0.0, 10.0]), np.array([5.0, 5.0]))
    assert scores["mae"] == 5.0 and scores["r2"] == 0.0 and scores["predicted_over_observed"] == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["years"][2024].pop("quota"), "years.2024.quota: missing"),
        (lambda d: d["years"][2022]["surplus_split"].update(town=4), "unknown level"),
        (lambda d: d["years"][2021]["overspend"].update(unit_share=1.5), "unit_share: must be between"),
        (lambda d: d.update(partial_month="weekly"), "partial_month"),
        (lambda d: d.update(conditions=["hypertension", "hypertensoin"]), "conditions: unknown value"),
        (lambda d: d["what_if"]["red_admissions_minus_10"].pop("assumption"), "states its assumption"),
    ],
)
def test_definition_errors_name_the_key(change, message) -> None:
    data = copy.deepcopy(RAW)
    change(data)
    with pytest.raises(DefinitionError, match=message):
        parse_capitation(data)


def test_unknown_year_and_split_are_clear() -> None:
    defs = load_capitation()
    with pytest.raises(DefinitionError, match="no capitation rule for 2019"):
        defs.year(2019)
    with pytest.raises(DefinitionError, match="unknown split 'x'"):
        defs.split(2024, "x")


def test_packaged_definitions_cite_every_year() -> None:
    text = definitions.definition_path("capitation.yaml").read_text(encoding="utf-8")
    defs = load_capitation()
    assert sorted(defs.years) == [2021, 2022, 2023, 2024]
    assert defs.years[2024].quota == 3700 and defs.years[2024].signing_supplement == 100
    for line in text.splitlines():
        if line.strip().startswith(("quota:", "signing_supplement:", "surplus_split:")):
            assert "[CF" in line or "[ASSUMED]" in line, line


@pytest.mark.slow
def test_capitation_report_end_to_end(small_run: Path, tmp_path: Path) -> None:
    """Small synthetic county, run as of 30 June 2024: six observed months, the rest projected."""
    import openpyxl
    from typer.testing import CliRunner

    from risk.capitation.render import write_capitation_report
    from risk.capitation.report import build_capitation_report
    from risk.cli import app

    report = build_capitation_report(small_run, 2024)
    assert report.months_observed == 6
    t = report.township.set_index("township_id")
    towns = t.drop(index="county")
    assert t.loc["county", "spend"] == pytest.approx(towns["spend"].sum())
    assert t.loc["county", "budget_ytd"] == pytest.approx(towns["budget_ytd"].sum())
    assert (towns["budget_year"] > towns["budget_ytd"]).all()  # six of twelve months so far
    assert towns["oe"].notna().all() and (towns["oe_low"] <= towns["oe"]).all()
    # risk-adjusted budgets redistribute the same county budget
    assert towns["budget_ytd_risk_adjusted"].sum() == pytest.approx(towns["budget_ytd"].sum())
    assert (towns["projected_spend"] >= towns["spend"]).all()
    kept = towns["county"] + towns["township"] + towns["village"]
    assert np.allclose(kept, np.where(towns["surplus"] >= 0, towns["kept"], -towns["unit_bears"]))
    evaluation = report.evaluation.table
    assert set(evaluation["method"]) == {"full", "demographic", "county_mean", "age_sex_mean", "tier_mean"}
    assert report.evaluation.notes  # the later year is not complete on 30 June

    xlsx = write_capitation_report(report, tmp_path / "cap.xlsx")
    sheet = openpyxl.load_workbook(xlsx)["包干 capitation"]
    header = [c.value for c in sheet[1]]
    assert header[0].startswith("乡镇卫生院") and any("结余留用" in h for h in header)
    budget_column = header.index("全年定额预算 year budget (定额)") + 1
    cell = sheet.cell(row=2, column=budget_column)
    assert isinstance(cell.value, float) and cell.number_format == "#,##0"
    html = write_capitation_report(report, tmp_path / "cap.html").read_text(encoding="utf-8")
    assert "合理超支分担" in html and "O/E" in html and "data:image/png;base64" in html

    runner = CliRunner()
    out = tmp_path / "cap.csv"
    result = runner.invoke(
        app,
        [
            "report",
            "capitation",
            "--run",
            str(small_run),
            "--year",
            "2024",
            "--by",
            "tier",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8-sig").startswith("分层 tier")
    store = tmp_path / "store.db"
    result = runner.invoke(
        app,
        [
            "report",
            "capitation",
            "--run",
            str(small_run),
            "--year",
            "2024",
            "--out",
            str(out),
            "--store",
            str(store),
        ],
    )
    assert result.exit_code == 0 and "stored" in result.output, result.output
    from risk.serving.auth import User
    from risk.serving.capitation import read_capitation
    from risk.serving.store import open_store

    engine = open_store(store)
    with engine.connect() as conn:
        stored = read_capitation(conn, User(name="a", role="analyst", team_id=None, township_id=None), 2024)
    engine.dispose()
    assert stored["townships"][-1]["township_id"] == "county"
    assert stored["townships"][-1]["spend"] == pytest.approx(t.loc["county", "spend"])
    missing = runner.invoke(app, ["report", "capitation", "--run", str(small_run), "--out", str(out)])
    from risk.indicators.overview import build_overview

    page = build_overview(small_run, tmp_path / "o.html", period="2024Q2").read_text(encoding="utf-8")
    # Chinese first like the rest of the overview: no English table names, township names not ids
    assert "慢病小包干" in page and "风险调整排名" in page and 'alt="全县预算余额（按月）"' in page
    assert "O/E league table" not in page and "gradient boosting" not in page
    english = build_overview(small_run, tmp_path / "en.html", period="2024Q2", lang="en").read_text(
        encoding="utf-8"
    )
    assert "Risk-adjusted ranking" in english and "慢病小包干" not in english
    plain = build_overview(small_run, tmp_path / "p.html", period="2024Q2", capitation=False)
    assert "慢病小包干" not in plain.read_text(encoding="utf-8")
    assert missing.exit_code == 2 and "--year" in missing.output
