"""Backfill: one run per quarter end, each linked to the previous one for transitions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from pipelines.backfill import backfill_dates, run_backfill
from pipelines.nightly import NightlyOptions
from risk.errors import RiskUserError


def test_quarter_end_dates():
    assert backfill_dates(date(2024, 1, 1), date(2024, 12, 31), 3) == [
        date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31)]
    assert backfill_dates(date(2024, 2, 15), date(2024, 4, 30), 1) == [date(2024, 2, 29), date(2024, 3, 31),
                                                                       date(2024, 4, 30)]
    with pytest.raises(RiskUserError):
        backfill_dates(date(2024, 5, 1), date(2024, 1, 1), 3)


@pytest.mark.slow
def test_backfill_writes_linked_runs(small_county: Path, tmp_path: Path):
    template = NightlyOptions(input_dir=small_county, as_of=date(2024, 3, 31), out=tmp_path, use_model=False,
                              xlsx=False)
    results = run_backfill(template, tmp_path / "runs", [date(2024, 3, 31), date(2024, 6, 30)])
    assert [r.run_dir.name for r in results] == ["2024-03-31", "2024-06-30"]
    second = json.loads((tmp_path / "runs" / "2024-06-30" / "run.json").read_text())
    assert second["previous_run_as_of"] == "2024-03-31"
    moved = sum(n for row in second["transitions"].values() for n in row.values())
    assert moved >= second["counts"]["tiered"]
