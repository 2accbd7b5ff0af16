"""Realistic dirt injected into a share of event rows, with a manifest of where it went.

Every dirty row is recorded as (table, row, kind, invalid), `row` being the 1-based data row of the output
file (header not counted), so validation can be scored for recall. `invalid: false` kinds (lower-case
ICD-10, labs in other accepted units) are odd but valid and must be accepted, converted or normalised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from risk.synth.columns import EVENT_DATE_COLUMN, Cat, Table, table_length, take_rows

TIMESTAMP_TABLES = {"vitals", "labs"}
UNKNOWN_PERSON_BASE = 99_000_000
BAD_CONDITIONS = ["hypertention", "gxy", "DM2", "diabetes type 2"]
VALID_UNIT_KINDS = {"mg/dL": "unit_mg_dl", "mmol/mol": "unit_mmol_mol", "mg/mmol": "unit_mg_mmol"}


def icd10_typo(label: str, variant: int) -> str:
    """Typing slips seen in claims that no normalisation may repair: letter O for zero, a doubled dot,
    a space inside the code. (A missing dot or lower case is repairable, so it is not made here.)"""
    if variant == 0 and "0" in label[1:3]:
        # Only in the category: a letter in the subcategory can be a valid extension character.
        return label[:1] + label[1:3].replace("0", "O", 1) + label[3:]
    if variant == 1 and "." in label:
        return label.replace(".", "..")
    return label[:1] + " " + label[1:]


def inject(
    rng: np.random.Generator,
    table_name: str,
    table: Table,
    share: float,
    kinds: dict,
    birth_of: Callable[[np.ndarray], np.ndarray] | None,
    row_offset: int,
) -> tuple[Table, list[tuple[str, int, str, bool]]]:
    """Return the table with dirt applied (duplicates inserted after their original) and manifest entries."""
    n = table_length(table) if table else 0
    manifest: list[tuple[str, int, str, bool]] = []
    if n == 0:
        return table, manifest
    names = [k for k, spec in kinds.items() if table_name in spec["tables"]]
    n_dirty = rng.binomial(n, share) if names and share > 0 else 0
    rows = np.sort(rng.choice(n, size=min(n_dirty, n), replace=False))
    weights = np.array([kinds[k]["weight"] for k in names], dtype=float)
    kind_of = (
        rng.choice(len(names), size=len(rows), p=weights / weights.sum()) if len(rows) else np.array([], int)
    )
    duplicate = np.zeros(n, dtype=np.int64)
    applied: list[tuple[np.ndarray, str]] = []
    for k, name in enumerate(names):
        target = rows[kind_of == k]
        if len(target) == 0:
            continue
        if name == "duplicate_row":
            duplicate[target] = 1
        else:
            _apply(rng, name, table_name, table, target, birth_of)
        applied.append((target, name))

    if duplicate.any():
        table = take_rows(table, np.repeat(np.arange(n), 1 + duplicate))
    shift = np.cumsum(duplicate)
    for target, name in applied:
        positions = target + shift[target] + 1 + row_offset
        manifest += [(table_name, int(pos), name, bool(kinds[name]["invalid"])) for pos in positions]
    if table_name == "labs":
        unit = table["unit"]
        for label, kind in VALID_UNIT_KINDS.items():
            if label in unit.labels:
                found = np.flatnonzero(unit.codes == unit.labels.index(label))
                manifest += [(table_name, int(pos) + 1 + row_offset, kind, False) for pos in found]
    return table, manifest


def _apply(
    rng: np.random.Generator,
    kind: str,
    table_name: str,
    table: Table,
    rows: np.ndarray,
    birth_of: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    if kind == "swapped_sbp_dbp":
        sbp = table["sbp"][rows].copy()
        table["sbp"][rows] = table["dbp"][rows]
        table["dbp"][rows] = sbp
    elif kind == "impossible_value":
        # Slipped decimal point / keyed twice: far outside any physiological range in any accepted unit.
        if table_name == "vitals":
            table["sbp"][rows] = table["sbp"][rows] * 10
        else:
            table["value"][rows] = table["value"][rows] * 1000 + 10_000
    elif kind in ("icd10_typo", "icd10_lowercase"):
        dx: Cat = table["primary_dx"]
        for row in rows:
            label = dx.labels[dx.codes[row]]
            new = label.lower() if kind == "icd10_lowercase" else icd10_typo(label, int(rng.integers(0, 3)))
            dx.codes[row] = dx.code_of(new)
    elif kind == "unknown_person":
        table["person_id"][rows] = UNKNOWN_PERSON_BASE + rng.integers(0, 999_999, size=len(rows))
    elif kind == "future_date":
        column = EVENT_DATE_COLUMN[table_name]
        days = 3650 + rng.integers(0, 365, size=len(rows))
        table[column][rows] += days * (86400 if table_name in TIMESTAMP_TABLES else 1)
    elif kind == "before_birth":
        column = EVENT_DATE_COLUMN[table_name]
        assert birth_of is not None
        births = birth_of(table["person_id"][rows])
        days = births - rng.integers(30, 3000, size=len(rows))
        table[column][rows] = days * 86400 + 9 * 3600 if table_name in TIMESTAMP_TABLES else days
    elif kind == "unknown_condition":
        cond: Cat = table["condition"]
        for row in rows:
            cond.codes[row] = cond.code_of(BAD_CONDITIONS[int(rng.integers(0, len(BAD_CONDITIONS)))])
    elif kind == "fund_exceeds_cost":
        table["fund_paid"][rows] = np.round(table["total_cost"][rows] * 1.25, 2)
    elif kind == "discharge_before_admission":
        table["discharged_on"][rows] = table["admitted_on"][rows] - rng.integers(1, 6, size=len(rows))
    else:
        raise ValueError(f"unknown dirt kind {kind}")
