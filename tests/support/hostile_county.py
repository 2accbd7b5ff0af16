"""A small synthetic county with a few residents carrying known personal values and spreadsheet formulas,
for the tests that grep outputs, logs and error messages for them (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent.parent
AS_OF = date(2024, 6, 30)
KNOWN_NAME = "欧阳秘密"
KNOWN_PHONE = "13912345678"
KNOWN_ID = "34062119700101123X"
# OWASP CSV injection: every leading character a spreadsheet may take as the start of a formula
FORMULA_NAMES = [
    '=HYPERLINK("http://evil.example/","点我")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]


def write_hostile_county(out: Path, *, persons: int = 300, file_format: str = "parquet") -> Path:
    """Synthetic county where one managed resident carries the KNOWN_* values, the next ones FORMULA_NAMES
    as names and '=1+1' as phone, and one of them a village ID starting with '='."""
    from risk.synth import SynthConfig, generate_county

    generate_county(
        SynthConfig(persons=persons, seed=11, start=date(2021, 1, 1), end=date(2024, 12, 31)), out
    )
    path = out / "persons.parquet"
    frame = pd.read_parquet(path)
    managed = set(pd.read_parquet(out / "conditions.parquet")["person_id"])
    rows = [i for i, pid in enumerate(frame["person_id"]) if pid in managed][5 : len(FORMULA_NAMES) + 6]
    frame.loc[rows[0], ["name", "phone", "national_id"]] = [KNOWN_NAME, KNOWN_PHONE, KNOWN_ID]
    for row, name in zip(rows[1:], FORMULA_NAMES, strict=True):
        frame.loc[row, "name"] = name
        frame.loc[row, "phone"] = "=1+1"
    frame.loc[rows[1], "village_id"] = "=1+2"  # IDs reach file, sheet and cell text too
    frame.to_parquet(path, index=False)
    if file_format == "csv":  # as the synthetic county writes CSV: text quoted, numbers and flags not
        for table in out.glob("*.parquet"):
            pa_csv.write_csv(pq.read_table(table), table.with_suffix(".csv"))
            table.unlink()
    return out


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m risk.cli ARGS` in a child process: its stdout and stderr (logs, tracebacks) as text."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "risk.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=600,
    )


def personal_values_in(text: str) -> list[str]:
    return [value for value in (KNOWN_NAME, KNOWN_PHONE, KNOWN_ID, KNOWN_ID[:-1]) if value in text]
