"""Property-based tests: code normalisation, unit conversion, and row accounting under random dirt."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk import definitions
from risk.io import find_table_file, read_input_table
from risk.validate import codes, validate_folder
from risk.validate.schema import canonical_schema
from tests.support.validate_inputs import AS_OF, good_tables, write_folder

ICD_CHARS = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789. ")
ICD_LIKE = st.text(ICD_CHARS, min_size=0, max_size=12)
WELL_FORMED_ICD = st.builds(
    lambda letter, d1, d2, tail: f"{letter}{d1}{d2}" + (f".{tail}" if tail else ""),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTVWXYZ"), st.sampled_from("0123456789"),
    st.sampled_from("0123456789AB"), st.text(st.sampled_from("0123456789ABCDEFGHIJKX"), max_size=4),
)


@pytest.fixture(autouse=True)
def _id_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "test-key")


def _sql(expression: str, value: str | None) -> object:
    return duckdb.execute(f"SELECT {expression.replace('$v', '$1')}", [value]).fetchall()[0][0]


@given(ICD_LIKE)
@settings(max_examples=150, deadline=None)
def test_icd10_normalisation_is_idempotent_and_matches_sql(code: str) -> None:
    once = codes.normalise_icd10(code)
    assert codes.normalise_icd10(once) == once
    trimmed = code.strip() or None
    assert _sql(codes.sql_normalise_icd10("$v"), trimmed) == once
    if once is not None:
        assert bool(_sql(codes.sql_is_icd10("$v"), once)) == codes.is_icd10(code)


@given(WELL_FORMED_ICD, st.booleans(), st.booleans())
@settings(max_examples=100, deadline=None)
def test_well_formed_icd10_is_accepted_however_written(code: str, lower: bool, drop_dot: bool) -> None:
    written = code.lower() if lower else code
    written = written.replace(".", "") if drop_dot else written
    assert codes.is_icd10(written)
    assert codes.normalise_icd10(written) == code


@given(st.lists(st.one_of(WELL_FORMED_ICD, ICD_LIKE), max_size=5), st.sampled_from([";", "; ", "；"]))
@settings(max_examples=100, deadline=None)
def test_icd10_list_normalisation_matches_sql(items: list[str], separator: str) -> None:
    text = separator.join(items).strip() or None
    expected = codes.normalise_icd10_list(text)
    assert _sql(codes.sql_normalise_icd10_list("$v"), text) == expected
    if expected is not None:
        all_valid = all(codes.is_icd10(item) for item in expected.split(";"))
        assert bool(_sql(codes.sql_is_icd10_list("$v"), expected)) == all_valid


@given(st.text(st.sampled_from("0123456789"), min_size=17, max_size=17), st.sampled_from("0123456789X"))
@settings(max_examples=200, deadline=None)
def test_national_id_checksum_python_and_sql_agree(first17: str, check: str) -> None:
    national_id = first17 + check
    valid = codes.national_id_is_valid(national_id)
    assert valid == (check == codes.national_id_check_char(first17))
    assert _sql(codes.sql_national_id_valid("$v"), national_id) is valid
    # the fast form used by the validation plan reads the 17 digits from one BIGINT column
    fast = codes.sql_national_id_valid("$v", "TRY_CAST(substr($v, 1, 17) AS BIGINT)")
    assert _sql(fast, national_id) is valid


def test_national_id_known_example() -> None:
    # GB 11643-1999 Annex worked example: 11010519491231002 -> check character X.
    assert codes.national_id_check_char("11010519491231002") == "X"
    assert codes.national_id_is_valid("11010519491231002x")


LAB_TESTS = definitions.lab_units()["tests"]
SOURCE_UNITS = [(test, unit) for test, spec in LAB_TESTS.items() for unit in spec["units"]]


@given(st.sampled_from(SOURCE_UNITS), st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=100, deadline=None)
def test_unit_conversion_round_trips(test_unit: tuple[str, str], position: float) -> None:
    test, unit = test_unit
    spec = LAB_TESTS[test]
    low, high = spec["range"]
    canonical = low + (high - low) * position
    factor, offset = spec["units"][unit]
    source_value = (canonical - offset) / factor
    assert source_value * factor + offset == pytest.approx(canonical, rel=1e-9, abs=1e-9)
    back = (canonical - offset) / factor
    assert back == pytest.approx(source_value, rel=1e-9, abs=1e-9)


def test_glucose_mg_dl_matches_the_molar_mass() -> None:
    factor, _ = LAB_TESTS["fpg"]["units"]["mg/dL"]
    assert 126 * factor == pytest.approx(7.0, abs=0.01)  # 126 mg/dL is the 7.0 mmol/L diabetes threshold


# --- row accounting under random dirt -----------------------------------------------------------------

DIRT = {
    "sbp_text": ("vitals", {"sbp": "??"}, "bad_value"),
    "sbp_high": ("vitals", {"sbp": "999"}, "out_of_range"),
    "inverted": ("vitals", {"sbp": "70", "dbp": "95"}, "sbp_not_above_dbp"),
    "future": ("vitals", {"measured_at": "2031-01-01"}, "future_date"),
    "stranger": ("vitals", {"person_id": "P404"}, "unknown_person"),
    "bad_unit": ("labs", {"unit": "mmol"}, "unknown_unit"),
    "bad_test": ("labs", {"test": "vitamin_d"}, "unknown_lab_test"),
    "bad_icd": ("encounters", {"primary_dx": "10I"}, "malformed_icd10"),
    "over_paid": ("encounters", {"fund_paid": "1e9"}, "out_of_range"),
    "bad_atc": ("prescriptions", {"atc_code": "C0"}, "malformed_atc"),
    "no_mode": ("follow_ups", {"mode": ""}, "missing_value"),
}


@st.composite
def dirty_county(draw: st.DrawFn) -> tuple[dict[str, pd.DataFrame], dict[tuple[str, int], str]]:
    """Clean tables with random good copies and random dirty rows appended; expected reason per dirty row."""
    tables = good_tables()
    expected: dict[tuple[str, int], str] = {}
    additions = draw(st.lists(st.one_of(st.none(), st.sampled_from(sorted(DIRT))), max_size=25))
    for serial, kind in enumerate(additions, start=1):
        if kind is None:  # a good row with a fresh key
            table = draw(st.sampled_from(["vitals", "labs", "encounters"]))
            row = tables[table].iloc[0].to_dict()
            if table == "encounters":
                row["encounter_id"] = f"G{serial}"
            else:
                day = f"2023-{1 + serial % 12:02d}-{1 + serial % 28:02d}"
                row["measured_at"] = f"{day} {serial % 24:02d}:00:00"
        else:
            table, changes, reason = DIRT[kind]
            row = tables[table].iloc[0].to_dict() | changes
            if table == "encounters":
                row["encounter_id"] = f"D{serial}"
            elif "measured_at" not in changes and table in ("vitals", "labs"):
                row["measured_at"] = f"2022-01-01 00:{serial:02d}:00"
            elif table == "prescriptions":
                row["dispensed_on"] = f"2022-{1 + serial % 12:02d}-{1 + serial % 28:02d}"
            elif table == "follow_ups":
                row["followed_on"] = f"2022-{1 + serial % 12:02d}-{1 + serial % 28:02d}"
        tables[table] = pd.concat([tables[table], pd.DataFrame([row])], ignore_index=True)
        if kind is not None:
            expected[(table, len(tables[table]))] = reason
    return tables, expected


@pytest.mark.slow
@given(dirty_county(), st.sampled_from(["csv", "parquet"]))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_row_is_accepted_or_quarantined_once(
    tmp_path_factory: pytest.TempPathFactory, county: tuple[dict[str, pd.DataFrame], dict], fmt: str
) -> None:
    tables, expected = county
    base = tmp_path_factory.mktemp("prop")
    result = validate_folder(write_folder(base / "in", tables, fmt=fmt), base / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(base / "out" / "quarantine.parquet")
    rows = quarantine[["table", "source_row", "reason_code"]].values
    found = {(t, int(r)): reason for t, r, reason in rows}
    assert found == expected
    for name, frame in tables.items():
        counts = result.tables[name]
        accepted = pd.read_parquet(base / "out" / "canonical" / f"{name}.parquet")
        assert counts.rows_read == len(frame) == len(accepted) + counts.rows_quarantined
        assert counts.rows_accepted == len(accepted)
        rows = set(accepted["source_row"]) | {r for t, r in found if t == name}
        assert rows == set(range(1, len(frame) + 1))
        canonical_schema(name).validate(accepted)  # no dirt leaks into a canonical table


# --- source_row is the row's position in the file -----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_row_is_the_position_in_a_large_file(tmp_path: Path, fmt: str) -> None:
    """Large enough for DuckDB to read in parallel; every tenth-thousand row is bad and must be found."""
    n = 300_000
    vitals = pd.DataFrame({
        "person_id": "P1",
        "measured_at": pd.date_range("2000-01-01", periods=n, freq="min").strftime("%Y-%m-%d %H:%M:%S"),
        "sbp": [str(100 + i % 50) if i % 10_000 else "x" for i in range(n)],
        "dbp": "70",
    })
    tables = good_tables() | {"vitals": vitals}
    validate_folder(write_folder(tmp_path / "in", tables, fmt=fmt), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine["source_row"].tolist() == [i + 1 for i in range(0, n, 10_000)]
    canonical = tmp_path / "out" / "canonical" / "vitals.parquet"
    accepted = pd.read_parquet(canonical, columns=["source_row", "sbp"])
    sample = accepted.iloc[::997]
    assert (sample["sbp"] == 100 + (sample["source_row"] - 1) % 50).all()


def test_read_input_table_gives_file_cells_and_row_numbers(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "in", good_tables())
    assert find_table_file(folder, "labs") == folder / "labs.csv"
    labs = read_input_table(folder, "labs")
    assert labs["source_row"].tolist() == [1, 2, 3]
    assert labs["value"].tolist() == ["126", "53", "5.2"]
    (folder / "labs.csv").unlink()
    assert read_input_table(folder, "labs", required=False) is None


ID_TEXT = st.text(st.sampled_from("0123456789Xx \t\n\x1c中-"), max_size=24)


@given(st.lists(ID_TEXT, min_size=1, max_size=20), st.sampled_from(["test-key", "k" * 100]))
@settings(max_examples=30, deadline=None)
def test_national_id_hash_and_mask_in_sql_equal_the_privacy_module(values: list[str], key: str) -> None:
    from risk import privacy
    from risk.validate import identifiers

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RISK_ID_KEY", key)
        con = duckdb.connect()
        identifiers.register(con)
        rows = con.execute(
            f"SELECT {identifiers.sql_hash_national_id('v')}, {identifiers.sql_mask_national_id('v')} "
            "FROM (SELECT unnest($1::VARCHAR[]) AS v)", [values]).fetchall()
        expected = [(privacy.hash_national_id(v), privacy.mask_national_id(v)) for v in values]
    assert rows == expected
