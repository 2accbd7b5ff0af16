"""`risk features` without pandas or sqlglot (issue 19: the whole command against a hand-written query).

The feature stage builds its value sets from literal rows and computes China-PAR on Arrow buffers, so
the command's process imports neither pandas (pyarrow imports it on its first numpy or Python-object
conversion) nor sqlglot. Each replacement is checked here against the pandas formulation it replaced.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from risk import definitions
from risk.features.chinapar import chinapar_10y_risk, chinapar_category
from risk.features.pipeline import add_chinapar
from risk.features.tables import value_set_columns, value_set_sql, value_set_tables
from tests.support.canonical import CanonicalBuilder

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(p.name for p in definitions.DEFINITIONS_DIR.glob("*.csv")))
def test_csv_records_are_the_frames_records(name: str) -> None:
    frame = pd.read_csv(definitions.definition_path(name), dtype=str)
    expected = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    assert list(definitions.csv_records(name)) == expected


def _pandas_value_sets() -> dict[str, pd.DataFrame]:
    """The value sets as risk/features/tables.py built them with pandas before issue 19."""

    def prefix_table(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        prefixes = frame[column].str.strip().str.upper()
        out = frame.assign(**{column: prefixes})
        out["prefix3"] = prefixes.str.slice(0, 3)
        out["prefix_len"] = prefixes.str.len().astype("int64")
        return out

    feature_defs = definitions.feature_definitions()
    complications = definitions.complications().rename(columns={"group": "cx_group"})
    complications = prefix_table(complications[["cx_group", "icd10_prefix"]], "icd10_prefix")
    drug_classes = definitions.drug_classes()
    rows = []
    for group, selector in feature_defs["pdc_groups"].items():
        ((column, wanted),) = selector.items()
        for prefix in drug_classes.loc[drug_classes[column] == wanted, "atc_prefix"]:
            rows.append({"pdc_group": group, "atc_prefix": prefix})
    return {
        "vs_managed_conditions": pd.DataFrame({"condition": list(feature_defs["managed_conditions"])}),
        "vs_complications": complications.drop_duplicates().reset_index(drop=True),
        "vs_pdc_classes": prefix_table(pd.DataFrame(rows).drop_duplicates(), "atc_prefix").reset_index(
            drop=True
        ),
    }


def test_value_sets_are_the_pandas_ones_in_every_form() -> None:
    expected = _pandas_value_sets()
    frames = value_set_tables()
    assert frames.keys() == expected.keys()
    con = duckdb.connect()
    for name, select in value_set_sql().items():
        pd.testing.assert_frame_equal(frames[name], expected[name], check_dtype=False)
        assert frames[name].shape[0] > 0
        from_sql = con.sql(select).df()
        pd.testing.assert_frame_equal(from_sql, expected[name], check_dtype=False)
        types = dict(zip(con.sql(select).columns, map(str, con.sql(select).types), strict=True))
        assert types == {c: ("BIGINT" if c == "prefix_len" else "VARCHAR") for c in expected[name].columns}


def test_a_prefix_with_a_quote_survives_the_sql_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    records = ({"group": "it's", "icd10_prefix": " i6'9 "},)
    real = definitions.csv_records
    monkeypatch.setattr(
        definitions, "csv_records", lambda n: records if n == "complications.csv" else real(n)
    )
    value_set_columns.cache_clear()
    try:
        row = duckdb.sql(value_set_sql()["vs_complications"]).fetchall()
    finally:
        value_set_columns.cache_clear()
    assert row == [("it's", "I6'9", "I6'", 4)]


def _pandas_chinapar(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """China-PAR as risk/features/pipeline.py's add_chinapar computed it with pandas before issue 19."""

    def column(name: str) -> pd.Series:
        return table.column(name).to_pandas()

    has_ascvd = column("cx_stroke") | column("cx_coronary") | column("cx_peripheral_arterial")
    on_drug = column("has_hypertension") & column("fu_last_adherence").isin(["regular", "intermittent"])
    treated = column("antihypertensive_dispensed_12m") | on_drug
    diabetes = (
        column("has_diabetes_t2")
        | (column("pdc_antidiabetic_12m") > 0)
        | (column("fpg_last").fillna(0.0) >= 7.0)
    )
    risk = chinapar_10y_risk(
        age=column("age"),
        male=column("sex") == "M",
        sbp=column("bp_last_sbp"),
        treated=treated,
        tc_mmol=column("tc_last"),
        hdl_mmol=column("hdl_c_last"),
        waist_cm=column("waist_last"),
        smoker=column("fu_last_smoker"),
        diabetes=diabetes,
        urban=column("urban"),
        family_history=column("family_history_ascvd"),
    )
    risk = np.where(has_ascvd.to_numpy(dtype=bool), np.nan, risk)
    return risk, chinapar_category(risk)


def _inputs(n: int, seed: int) -> pa.Table:
    """China-PAR inputs with missing values everywhere the SQL can leave them (the flags that the SQL
    always fills, has_* and cx_* and the dispensing flag, are never missing)."""
    rng = np.random.default_rng(seed)

    def maybe(values: np.ndarray, share: float = 0.15) -> list:
        return [None if rng.random() < share else v.item() for v in values]

    flags = lambda share=0.15: maybe(rng.random(n) < 0.4, share)  # noqa: E731
    return pa.table(
        {
            "age": maybe(rng.uniform(30, 80, n)),
            "sex": maybe(rng.choice(np.array(["M", "F"]), n)),
            "bp_last_sbp": maybe(rng.uniform(100, 190, n)),
            "tc_last": maybe(rng.uniform(3, 7, n)),
            "hdl_c_last": maybe(rng.uniform(0.8, 2, n)),
            "waist_last": maybe(rng.uniform(60, 110, n)),
            "fu_last_smoker": flags(),
            "urban": flags(),
            "family_history_ascvd": flags(),
            # never missing in the SQL result (MAX over the managed conditions); where the left operand of
            # | or & is missing, pandas' object operators give False whatever the right one is
            "has_hypertension": flags(0.0),
            "has_diabetes_t2": flags(0.0),
            "fu_last_adherence": maybe(rng.choice(np.array(["regular", "intermittent", "none"]), n)),
            "antihypertensive_dispensed_12m": flags(0.0),
            "pdc_antidiabetic_12m": maybe(rng.choice(np.array([0.0, 0.5, 1.0]), n)),
            "fpg_last": maybe(rng.uniform(4, 10, n)),
            "cx_stroke": flags(0.0),
            "cx_coronary": [bool(v) for v in rng.random(n) < 0.05],
            "cx_peripheral_arterial": [bool(v) for v in rng.random(n) < 0.05],
        }
    )


@pytest.mark.parametrize("layout", ["one chunk", "several chunks", "sliced", "large strings"])
def test_chinapar_on_arrow_buffers_is_the_pandas_formulation(layout: str) -> None:
    table = _inputs(3000, seed=19)
    if layout == "large strings":  # as a Spark Arrow batch may carry them
        for name in ("sex", "fu_last_adherence"):
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, table.column(name).cast(pa.large_string()))
    elif layout == "several chunks":
        table = pa.concat_tables([table.slice(0, 1001), table.slice(1001, 999), table.slice(2000)])
    elif layout == "sliced":
        table = table.slice(7, 2500)  # buffers with a non-zero offset (not a multiple of 8)
    risk, category = _pandas_chinapar(table)
    assert np.isfinite(risk).sum() > 300 and np.isnan(risk).sum() > 300  # both kinds of row occur
    out = add_chinapar(table)
    np.testing.assert_array_equal(out.column("chinapar_risk_10y").to_numpy(zero_copy_only=False), risk)
    assert out.column("chinapar_risk_10y").null_count == np.isnan(risk).sum()
    assert out.column("chinapar_category").to_pylist() == list(category)
    assert out.schema.field("chinapar_category").type == pa.string()


def test_the_features_command_imports_neither_pandas_nor_sqlglot(tmp_path: Path) -> None:
    b = CanonicalBuilder()
    b.person("P1", sex="M", birth_date="1960-01-01").condition("P1", "hypertension")
    b.vital("P1", "2024-05-01 09:00", 150, 90, waist_cm=95)
    canonical = b.write(tmp_path / "canonical")
    out = tmp_path / "features.parquet"
    script = (
        "import sys\n"
        "from risk.cli import app\n"
        f"sys.argv = ['risk', 'features', {str(canonical.parent)!r}, '--as-of', '2024-06-30', '--out', "
        f"{str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('pandas', 'sqlglot') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert pq.read_table(out).num_rows == 1
