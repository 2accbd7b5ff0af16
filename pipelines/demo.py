"""The README's main command: a synthetic county through every layer, twice (last quarter and now)."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.nightly import NightlyOptions, run_nightly
from risk.atomic import check_replaceable
from risk.indicators.overview import build_overview
from risk.synth import SynthConfig, generate_county

log = logging.getLogger("risk.demo")


def run_demo(out: Path, persons: int, seed: int, as_of: date) -> str:
    input_dir = out / "input"
    marker = input_dir / ".synth-params"
    params = f"persons={persons} seed={seed}"
    if not (marker.exists() and marker.read_text() == params):
        check_replaceable(input_dir, "_synth", "an earlier synthetic county")  # overwrite=True below
        log.info("synthesising a county of %d residents (seed %d)", persons, seed)
        generate_county(SynthConfig(persons=persons, seed=seed, start=date(2021, 1, 1), end=as_of,
                                   overwrite=True), input_dir)
        marker.write_text(params)
    previous_as_of = (pd.Timestamp(as_of) - pd.offsets.QuarterEnd(1)).date()
    previous = out / f"run-{previous_as_of.isoformat()}"
    # The demo scores its own synthetic county with the committed model whatever the feature drift: the
    # drift (PSI per feature) and the warning are in each run's run.json and summary.md.
    run_nightly(NightlyOptions(input_dir=input_dir, as_of=previous_as_of, out=previous, xlsx=False,
                               accept_model_drift=True))
    current = run_nightly(NightlyOptions(
        input_dir=input_dir, as_of=as_of, out=out / f"run-{as_of.isoformat()}", previous_run=previous,
        accept_model_drift=True,
    ))
    # the national control-rate indicators are annual (年内): headline the calendar year of the run
    overview = build_overview(current.run_dir, out / "county-overview.html", period=str(as_of.year),
                              runs_root=out)
    lists = current.run_dir / "lists"
    return (
        current.render()
        + "\n## Products\n\n"
        + f"- run folder: {current.run_dir}\n"
        + f"- priority lists: {lists / 'teams'} (CSV per team), {lists / 'xlsx'} (workbook per team)\n"
        + f"- unmanaged key population: {lists / 'unmanaged_key_population.csv'}\n"
        + f"- county overview report: {overview}\n"
    )
