"""Synthetic county generator: contract schema, determinism, calibration (statistically), outcomes, dirt."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from risk.definitions import contract, lab_units, synth_county, value_set
from risk.errors import RiskUserError
from risk.synth import SynthConfig, generate_county
from risk.synth.calibration import measure
from risk.synth.columns import ARROW_TYPES, EVENT_DATE_COLUMN

PERSONS = 12_000
START, END = date(2021, 1, 1), date(2024, 12, 31)
ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "county"
    generate_county(SynthConfig(persons=PERSONS, seed=7, start=START, end=END), out)
    return out


@pytest.fixture(scope="module")
def tables(county: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(county / f"{name}.parquet") for name in contract().tables}


@pytest.fixture(scope="module")
def manifest(county: Path) -> pd.DataFrame:
    return pd.read_parquet(county / "_synth" / "dirty_rows.parquet")


@pytest.fixture(scope="module")
def figures(county: Path) -> dict[str, float]:
    return measure(county)


def clean(tables: dict[str, pd.DataFrame], manifest: pd.DataFrame, name: str) -> pd.DataFrame:
    """Table without the rows the manifest marks invalid."""
    bad = manifest.loc[(manifest["table"] == name) & manifest["invalid"], "row"].to_numpy() - 1
    frame = tables[name]
    return frame.drop(index=frame.index[bad])


def test_every_contract_table_has_exact_columns_and_types(county: Path) -> None:
    for name, spec in contract().tables.items():
        schema = pq.read_schema(county / f"{name}.parquet")
        assert schema.names == list(spec.columns), name
        for column in spec.columns.values():
            assert schema.field(column.name).type == ARROW_TYPES[column.type], (name, column.name)
    assert not list(county.parent.glob(".county.tmp-*")), "staging folder left behind"
    assert (county / "_synth" / "truth.parquet").exists()


def test_same_seed_same_output_other_seed_differs(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> dict[str, pd.DataFrame]:
        generate_county(SynthConfig(persons=2_500, seed=seed, start=START, end=END), tmp_path / name)
        return {
            t: pd.read_parquet(tmp_path / name / f"{t}.parquet") for t in ("persons", "vitals", "encounters")
        }

    first, again, other = run(11, "a"), run(11, "b"), run(12, "c")
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert not first["vitals"].equals(other["vitals"])


def test_population_calibration(figures: dict[str, float]) -> None:
    targets = synth_county()["targets"]
    population = targets["resident_population"]
    # Binomial standard error at 12,000 persons is ~0.3 points for 11 %; tolerances are ~4 SE.
    assert figures["registered hypertension per resident"] == pytest.approx(
        targets["hypertension_registered"] / population, abs=0.012
    )
    assert figures["registered diabetes per resident"] == pytest.approx(
        targets["diabetes_registered"] / population, abs=0.007
    )
    assert figures["true hypertension prevalence"] > figures["registered hypertension per resident"] * 1.5
    assert figures["true diabetes prevalence"] > figures["registered diabetes per resident"] * 1.5
    assert figures["male share"] == pytest.approx(0.505, abs=0.02)
    assert 0.18 < figures["share aged 65+ (end)"] < 0.32
    assert figures["signing rate among registered chronic patients"] == pytest.approx(0.9675, abs=0.015)
    assert figures["deaths per resident-year"] == pytest.approx(0.0075, abs=0.0025)


def test_care_calibration(figures: dict[str, float]) -> None:
    assert 2.8 <= figures["follow-ups per managed hypertensive, final year"] <= 4.6
    assert 0.50 <= figures["BP control, managed hypertensives with a reading"] <= 0.72
    assert 0.45 <= figures["glucose control (FPG < 7), managed diabetics with a test"] <= 0.75
    assert 0.095 <= figures["admissions per resident-year"] <= 0.14
    assert figures["inpatient care within the county"] == pytest.approx(0.85, abs=0.03)


def test_geography_and_identifiers(tables: dict[str, pd.DataFrame]) -> None:
    persons = tables["persons"]
    assert persons["township_id"].nunique() == 18
    assert 240 <= persons["village_id"].nunique() <= 251
    villages = persons.drop_duplicates("village_id")
    assert (villages.groupby("unit_id")["village_id"].nunique() <= 2).all()
    assert villages.groupby("village_id")["unit_id"].nunique().max() == 1
    assert (villages["village_id"].str[:3] == villages["township_id"]).all()
    ids = persons["national_id"].to_numpy(dtype=str)
    assert all(i.startswith("340621") and len(i) == 18 for i in ids[:500])
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for national_id, birth, sex in zip(
        ids[:500], persons["birth_date"][:500], persons["sex"][:500], strict=True
    ):
        total = sum(int(d) * w for d, w in zip(national_id[:17], weights, strict=True))
        assert national_id[17] == "10X98765432"[total % 11]
        assert national_id[6:14] == pd.Timestamp(birth).strftime("%Y%m%d")
        assert (int(national_id[16]) % 2 == 1) == (sex == "M")
    assert persons["phone"].dropna().str.fullmatch(r"1[3578]\d{9}").all()


def test_outcomes_rise_with_latent_risk(county: Path) -> None:
    truth = pd.read_parquet(county / "_synth" / "truth.parquet")
    truth["event"] = (truth["cv_admissions"] + truth["complications"] > 0) | truth["death_date"].notna()
    by_quintile = truth.groupby(pd.qcut(truth["latent_risk"], 5, labels=False), observed=True)["event"].mean()
    assert by_quintile.is_monotonic_increasing, by_quintile
    assert by_quintile.iloc[-1] > 3 * by_quintile.iloc[0]


def test_unregistered_patients_leave_evidence(county: Path, tables: dict[str, pd.DataFrame]) -> None:
    truth = pd.read_parquet(county / "_synth" / "truth.parquet")
    hidden = set(truth.loc[truth["true_hypertension"] & ~truth["registered_hypertension"], "person_id"])
    raised = tables["vitals"].query("source in ['screening', 'clinic'] and sbp >= 140")["person_id"]
    claims = tables["encounters"].query("primary_dx == 'I10'")["person_id"]
    drugs = tables["prescriptions"].loc[tables["prescriptions"]["atc_code"].str.startswith("C0"), "person_id"]
    evidence = hidden & (set(raised) | set(claims) | set(drugs))
    assert 0.3 < len(evidence) / len(hidden) < 0.95
    registered = set(tables["conditions"].query("condition == 'hypertension'")["person_id"])
    assert not hidden & registered


def test_dirty_rows_are_where_the_manifest_says(
    tables: dict[str, pd.DataFrame], manifest: pd.DataFrame
) -> None:
    known = set(tables["persons"]["person_id"])
    births = tables["persons"].set_index("person_id")["birth_date"]
    conditions = value_set("conditions")
    event_rows = sum(len(tables[t]) for t in EVENT_DATE_COLUMN)
    assert manifest["invalid"].sum() == pytest.approx(0.005 * event_rows, rel=0.2)
    checks = {
        "swapped_sbp_dbp": lambda r: r["sbp"] < r["dbp"],
        "impossible_value": lambda r: r["sbp"] > 300 if "sbp" in r else r["value"] > 10_000,
        "icd10_typo": lambda r: not ICD10.match(r["primary_dx"]),
        "icd10_lowercase": lambda r: r["primary_dx"] != r["primary_dx"].upper(),
        "unknown_person": lambda r: r["person_id"] not in known,
        "unknown_condition": lambda r: r["condition"] not in conditions,
        "fund_exceeds_cost": lambda r: r["fund_paid"] > r["total_cost"],
        "discharge_before_admission": lambda r: r["discharged_on"] < r["admitted_on"],
        "unit_mg_dl": lambda r: r["unit"] == "mg/dL",
        "unit_mmol_mol": lambda r: r["unit"] == "mmol/mol",
    }
    assert set(manifest["kind"]) >= set(checks) | {"duplicate_row", "future_date", "before_birth"}
    for entry in manifest.itertuples():
        frame = tables[entry.table]
        row = frame.iloc[entry.row - 1]
        if entry.kind == "duplicate_row":
            assert row.equals(frame.iloc[entry.row - 2]), entry
        elif entry.kind == "future_date":
            assert pd.Timestamp(row[EVENT_DATE_COLUMN[entry.table]]) > pd.Timestamp(END), entry
        elif entry.kind == "before_birth":
            when = pd.Timestamp(row[EVENT_DATE_COLUMN[entry.table]])
            assert when < pd.Timestamp(births[row["person_id"]]), entry
        else:
            assert checks[entry.kind](row), entry


def test_no_events_after_death_and_dates_in_range(
    tables: dict[str, pd.DataFrame], manifest: pd.DataFrame
) -> None:
    persons = tables["persons"].set_index("person_id")
    assert (
        pd.to_datetime(persons["death_date"].dropna()).between(pd.Timestamp(START), pd.Timestamp(END)).all()
    )
    for name, column in EVENT_DATE_COLUMN.items():
        frame = clean(tables, manifest, name)
        when = pd.to_datetime(frame[column]).dt.normalize()
        death = pd.to_datetime(frame["person_id"].map(persons["death_date"]))
        birth = pd.to_datetime(frame["person_id"].map(persons["birth_date"]))
        assert not (when > death).any(), name
        assert (when > birth).all(), name
        assert (when <= pd.Timestamp(END)).all(), name
        if name != "conditions":
            assert (when >= pd.Timestamp(START)).all(), name
    encounters = clean(tables, manifest, "encounters")
    assert (encounters["discharged_on"] >= encounters["admitted_on"]).all()
    assert (encounters["fund_paid"] < encounters["total_cost"]).all()
    assert encounters["encounter_id"].is_unique


def test_follow_ups_carry_measurements(tables: dict[str, pd.DataFrame]) -> None:
    visits = tables["follow_ups"].query("mode != 'phone' and condition == 'hypertension'")
    readings = tables["vitals"].query("source == 'follow_up'")
    read_on = set(
        zip(readings["person_id"], pd.to_datetime(readings["measured_at"]).dt.normalize(), strict=True)
    )
    visit_days = zip(visits["person_id"], pd.to_datetime(visits["followed_on"]), strict=True)
    assert np.mean([key in read_on for key in visit_days]) > 0.97
    # Spring Festival: fewer follow-ups in January-February than in the other months (per month).
    months = pd.to_datetime(tables["follow_ups"]["followed_on"]).dt.month
    assert months.isin([1, 2]).mean() / 2 < months.isin(range(3, 13)).mean() / 10


@pytest.mark.slow
def test_csv_format_and_home_readings(tmp_path: Path) -> None:
    config = SynthConfig(
        persons=1_500,
        seed=3,
        start=date(2023, 1, 1),
        end=date(2023, 12, 31),
        file_format="csv",
        home_bp_per_year=50,
    )
    summary = generate_county(config, tmp_path / "csv")
    for name, rows in summary.rows.items():
        assert len(pd.read_csv(tmp_path / "csv" / f"{name}.csv")) == rows
    vitals = pd.read_csv(tmp_path / "csv" / "vitals.csv")
    assert (vitals["source"] == "home").sum() > 1_000
    assert "rows" in summary.render()


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(RiskUserError):
        generate_county(SynthConfig(persons=100), tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").exists()
    with pytest.raises(RiskUserError):
        generate_county(SynthConfig(persons=100, start=END, end=START), tmp_path / "x")


def test_rows_not_in_manifest_respect_contract_ranges(
    tables: dict[str, pd.DataFrame], manifest: pd.DataFrame
) -> None:
    for name, spec in contract().tables.items():
        frame = clean(tables, manifest, name)
        for column in spec.columns.values():
            if column.range is not None:
                values = frame[column.name].dropna()
                assert values.between(*column.range).all(), (name, column.name, values.min(), values.max())
            if column.allowed is not None:
                assert frame[column.name].dropna().isin(column.allowed).all(), (name, column.name)
    labs = clean(tables, manifest, "labs")
    for test, spec in lab_units()["tests"].items():
        rows = labs[labs["test"] == test]
        unit = rows["unit"].astype(object)
        factor = unit.map({u: float(f) for u, (f, _) in spec["units"].items()}).astype(float)
        offset = unit.map({u: float(o) for u, (_, o) in spec["units"].items()}).astype(float)
        assert factor.notna().all(), test
        assert (rows["value"] * factor + offset).between(*spec["range"]).all(), test


@pytest.mark.parametrize(("persons", "block_size"), [(4, 50_000), (203, 100)])
def test_tiny_counties_and_a_tiny_last_block_give_complete_typed_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persons: int, block_size: int
) -> None:
    """A block can hold nobody with, say, a follow-up: the table is still written with its columns."""
    import risk.synth.generate as generate

    monkeypatch.setattr(generate, "BLOCK_SIZE", block_size)
    out = tmp_path / "tiny"
    generate.generate_county(SynthConfig(persons=persons, seed=5, start=START, end=END), out)
    for name, spec in contract().tables.items():
        written = pq.read_schema(out / f"{name}.parquet")
        assert set(spec.columns) <= set(written.names), name
    assert pq.ParquetFile(out / "persons.parquet").metadata.num_rows == persons
