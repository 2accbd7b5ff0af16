"""README's main command: the demo runs every layer end to end (small county to keep it quick)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "demo"
    # 2,500 residents: enough managed patients (>= the drift check's min_rows, 200) for the model to be
    # checked against its training population, which the committed model passes without accepting drift
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--persons", "2500", "--seed", "3", "--as-of", "2024-12-31"]
    )
    assert result.exit_code == 0, result.output
    # the quarter-end run and the run after the call month pass the drift check (call-result visits keep
    # the last asked form's answers); the mid-quarter run before the month accepts it (pipelines/demo.py)
    assert "drift" not in (out / "run-2024-09-30" / "summary.md").read_text("utf-8")
    current_summary = (out / "run-2024-12-31" / "summary.md").read_text("utf-8")
    assert "drift" not in current_summary
    assert "# Nightly run" in result.output and "county overview report" in result.output
    current, previous = out / "run-2024-12-31", out / "run-2024-09-30"
    for run in (current, previous):
        assert (run / "run.json").exists() and (run / "tiers.parquet").exists()
    assert any((current / "lists" / "xlsx").glob("*.xlsx"))
    assert (out / "county-overview.html").stat().st_size > 10_000
    assert date(2024, 12, 31).isoformat() in current_summary
    # a month of the follow-up loop: the run before December, its results imported, the cascade in December
    assert (out / "run-2024-11-30" / "calls" / "calls.csv").exists()
    assert "## Call cascade 2024-12 (county)" in result.output
    import pandas as pd

    cascade = pd.read_csv(current / "calls" / "cascade.csv", dtype={"result": str}, keep_default_na=False)
    county = cascade[cascade["level"] == "county"].set_index(["step", "result"])
    called, returned = (int(county.loc[(step, ""), "numerator"]) for step in ("called", "returned"))
    assert called > 0 and 0 < returned < called
    page = (out / "county-overview.html").read_text(encoding="utf-8")
    assert "随访外呼进展（2024-12" in page  # the cascade section, Chinese like the rest of the page


def test_demo_never_replaces_an_input_folder_it_did_not_write(tmp_path: Path):
    own = tmp_path / "demo" / "input"
    own.mkdir(parents=True)
    (own / "persons.csv").write_text("the county's real extract", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--persons", "200"])
    assert result.exit_code == 2 and "not an earlier synthetic county" in result.output
    assert (own / "persons.csv").read_text(encoding="utf-8") == "the county's real extract"


def test_a_demo_county_too_small_to_check_the_model_is_refused_unless_drift_is_accepted(tmp_path: Path):
    args = ["demo", "--out", str(tmp_path / "demo"), "--persons", "1500", "--seed", "3"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "patients to score" in refused.output
    assert "--accept-model-drift" in refused.output  # the flag it names is one the demo has
