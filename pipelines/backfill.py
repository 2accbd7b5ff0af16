"""Backfill: the nightly job at a series of past dates (e.g. every quarter end), each run published under
RUNS_ROOT/<as_of>, so tier mix and transitions over time are available to analysts from day one."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.nightly import NightlyOptions, NightlyResult, run_nightly
from risk.errors import RiskUserError

log = logging.getLogger("risk.backfill")


def backfill_dates(start: date, end: date, every_months: int) -> list[date]:
    """Calendar-aligned month ends in [start, end] whose month is a multiple of `every_months`
    (3 = quarter ends, 12 = year ends)."""
    if every_months < 1:
        raise RiskUserError("--every-months must be at least 1")
    if start > end:
        raise RiskUserError(f"start {start} is after end {end}")
    ends = pd.date_range(start, end, freq="ME")
    return [stamp.date() for stamp in ends if stamp.month % every_months == 0]


def run_backfill(template: NightlyOptions, runs_root: Path, dates: list[date]) -> list[NightlyResult]:
    """One run per date, oldest first, each with the previous one for tier transitions."""
    if not dates:
        raise RiskUserError("no dates to backfill in that range")
    results: list[NightlyResult] = []
    previous: Path | None = None
    for number, as_of in enumerate(dates, start=1):
        log.info("backfill %d/%d: as of %s", number, len(dates), as_of)
        options = replace(template, as_of=as_of, out=runs_root / as_of.isoformat(), previous_run=previous)
        result = run_nightly(options)
        results.append(result)
        previous = result.run_dir
    return results
