"""Outcome labels as SQL over the canonical tables (DuckDB), value sets from definitions/outcomes.yaml.

A label belongs to a (person, as_of) pair of the feature table: outcome = 1 when an outcome admission, a new
complication or death happens in (as_of, as_of + horizon]. Only events after as_of are read, so a label never
leaks into the features of the same snapshot, and a snapshot's labels are flagged complete only when the data
reaches as_of + horizon.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from risk import definitions
from risk.errors import InputFileError, RiskUserError
from risk.models.outcomes import OutcomeDefinition, outcome_definition
from risk.sql import literal

LABEL_COLUMNS = [
    "person_id",
    "as_of",
    "outcome",
    "outcome_admission",
    "outcome_new_complication",
    "outcome_death",
    "outcome_date",
    "label_complete",
]
# Tables whose last date tells how far the data reaches (the county extract's end date).
DATA_END_SOURCES = {"encounters": "admitted_on", "follow_ups": "followed_on"}


def canonical_table(canonical_dir: Path, table: str) -> Path:
    path = Path(canonical_dir) / f"{table}.parquet"
    if not path.is_file():
        raise InputFileError(str(path), f"canonical table '{table}' is missing; run `risk validate` first")
    return path


def prefix_match_sql(column: str, prefixes: list[str]) -> str:
    """SQL that is true when `column` starts with one of the ICD-10 prefixes (equality per prefix length,
    so DuckDB evaluates it as hash lookups instead of a LIKE per prefix)."""
    by_length: dict[int, list[str]] = {}
    for prefix in prefixes:
        by_length.setdefault(len(prefix), []).append(prefix)
    parts = [
        f"left({column}, {length}) IN ({', '.join(literal(p) for p in sorted(codes))})"
        for length, codes in sorted(by_length.items())
    ]
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def data_end_date(canonical_dir: Path) -> date:
    """The last event date in the canonical extract (encounters, follow-ups)."""
    con = duckdb.connect()
    ends = []
    for table, column in DATA_END_SOURCES.items():
        path = Path(canonical_dir) / f"{table}.parquet"
        if path.is_file():
            value = con.execute(
                f"SELECT max(CAST({column} AS DATE)) FROM read_parquet(?)", [str(path)]
            ).fetchone()
            if value and value[0] is not None:
                ends.append(value[0])
    if not ends:
        raise RiskUserError(
            f"{canonical_dir}: no encounter or follow-up dates; cannot tell where the data ends"
        )
    return max(ends)


def complication_first_dates_sql(encounters: str, groups: tuple[str, ...]) -> str:
    """First diagnosis date per person and complication group, primary or secondary dx, any setting."""
    value_sets = definitions.complications()
    value_sets = value_sets[value_sets["group"].isin(groups)]
    cases = []
    for group, rows in value_sets.groupby("group"):
        prefixes = [str(p).strip().upper() for p in rows["icd10_prefix"]]
        cases.append(f"WHEN {prefix_match_sql('code', prefixes)} THEN {literal(str(group))}")
    if not cases:
        return "SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS grp, NULL::DATE AS first_date WHERE FALSE"
    return f"""
        WITH dx AS (
            SELECT person_id, CAST(admitted_on AS DATE) AS day, upper(trim(primary_dx)) AS code
            FROM {encounters}
            UNION ALL
            SELECT person_id, day, upper(trim(code)) AS code FROM (
                SELECT person_id, CAST(admitted_on AS DATE) AS day,
                       unnest(string_split(secondary_dx, ';')) AS code
                FROM {encounters} WHERE secondary_dx IS NOT NULL AND secondary_dx <> ''
            )
        ), grouped AS (
            SELECT person_id, day, CASE {" ".join(cases)} END AS grp FROM dx
        )
        SELECT person_id, grp, min(day) AS first_date FROM grouped WHERE grp IS NOT NULL GROUP BY 1, 2
    """


def build_outcome_labels(
    canonical_dir: Path,
    cohort: pd.DataFrame,
    definition: OutcomeDefinition | None = None,
    data_end: date | None = None,
) -> pd.DataFrame:
    """Labels for every (person_id, as_of) row of `cohort` (typically the feature table of each snapshot).

    Returns LABEL_COLUMNS, one row per cohort row, in cohort order.
    """
    definition = definition or outcome_definition()
    if not {"person_id", "as_of"} <= set(cohort.columns):
        raise RiskUserError("the label cohort needs person_id and as_of columns")
    canonical_dir = Path(canonical_dir)
    encounters = f"read_parquet({literal(canonical_table(canonical_dir, 'encounters'))})"
    persons = f"read_parquet({literal(canonical_table(canonical_dir, 'persons'))})"
    data_end = data_end or data_end_date(canonical_dir)
    horizon = int(definition.horizon_days)

    admission_prefixes = [prefix for _, prefix in definition.admission_prefixes()]
    settings = ", ".join(literal(s) for s in definition.admission_settings)
    death_sql = (
        f"p.death_date IS NOT NULL AND CAST(p.death_date AS DATE) > c.as_of "
        f"AND CAST(p.death_date AS DATE) <= c.as_of + {horizon}"
        if definition.death
        else "FALSE"
    )
    frame = pd.DataFrame(
        {
            "row_id": range(len(cohort)),
            "person_id": cohort["person_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(cohort["as_of"]).dt.date.to_numpy(),
        }
    )
    con = duckdb.connect()
    con.register("cohort_rows", frame)
    query = f"""
        WITH cohort AS (SELECT row_id, person_id, CAST(as_of AS DATE) AS as_of FROM cohort_rows),
        window_admissions AS (
            SELECT c.row_id, min(CAST(e.admitted_on AS DATE)) AS first_date
            FROM cohort c JOIN {encounters} e ON e.person_id = c.person_id
            WHERE e.setting IN ({settings})
              AND CAST(e.admitted_on AS DATE) > c.as_of
              AND CAST(e.admitted_on AS DATE) <= c.as_of + {horizon}
              AND {prefix_match_sql("upper(trim(e.primary_dx))", admission_prefixes)}
            GROUP BY 1
        ),
        first_complications AS ({complication_first_dates_sql(encounters, definition.complication_groups)}),
        window_complications AS (
            SELECT c.row_id, min(f.first_date) AS first_date
            FROM cohort c JOIN first_complications f ON f.person_id = c.person_id
            WHERE f.first_date > c.as_of AND f.first_date <= c.as_of + {horizon}
            GROUP BY 1
        )
        SELECT c.row_id, c.person_id, c.as_of,
               a.first_date IS NOT NULL AS outcome_admission,
               x.first_date IS NOT NULL AS outcome_new_complication,
               coalesce({death_sql}, FALSE) AS outcome_death,
               least(a.first_date, x.first_date,
                     CASE WHEN {death_sql} THEN CAST(p.death_date AS DATE) END) AS outcome_date,
               c.as_of + {horizon} <= DATE {literal(data_end.isoformat())} AS label_complete
        FROM cohort c
        LEFT JOIN window_admissions a USING (row_id)
        LEFT JOIN window_complications x USING (row_id)
        LEFT JOIN {persons} p ON p.person_id = c.person_id
        ORDER BY c.row_id
    """
    labels = con.execute(query).df()
    con.close()
    labels["outcome"] = (
        labels["outcome_admission"] | labels["outcome_new_complication"] | labels["outcome_death"]
    ).astype("int8")
    labels["as_of"] = pd.to_datetime(labels["as_of"]).dt.date
    labels["outcome_date"] = pd.to_datetime(labels["outcome_date"]).dt.date
    return labels[LABEL_COLUMNS].reset_index(drop=True)
