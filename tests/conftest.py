"""Shared fixtures: one small synthetic county and one nightly run over it, built once per session."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

# Test data is synthetic: the development ID key, asked for explicitly as any user must (risk/privacy.py).
os.environ.setdefault("RISK_DEV_ID_KEY", "1")

SMALL_COUNTY_PERSONS = 4000
SMALL_COUNTY_SEED = 7
SMALL_COUNTY_AS_OF = date(2024, 6, 30)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One SparkSession (local[2]) shared by every Spark test of a worker; skipped without PySpark or
    Java unless RISK_REQUIRE_SPARK=1 (CI), where a missing engine is a failure."""
    from risk.engines.spark_session import spark_available

    missing = spark_available()
    if missing:
        if os.environ.get("RISK_REQUIRE_SPARK") == "1":
            pytest.fail(f"RISK_REQUIRE_SPARK=1 but {missing}")
        pytest.skip(missing)
    from risk.engines.spark_session import get_spark

    return get_spark("local[2]")


@pytest.fixture(scope="session")
def small_county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw input folder (data contract) of a 4,000-resident synthetic county, 2021-2024."""
    from risk.synth import SynthConfig, generate_county

    out = tmp_path_factory.mktemp("county") / "input"
    generate_county(
        SynthConfig(persons=SMALL_COUNTY_PERSONS, seed=SMALL_COUNTY_SEED,
                    start=date(2021, 1, 1), end=date(2024, 12, 31)),
        out,
    )
    return out


@pytest.fixture(scope="session")
def small_run(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nightly run folder over the small county (rules and the committed model, if any)."""
    from pipelines.nightly import NightlyOptions, run_nightly

    out = tmp_path_factory.mktemp("runs") / "run"
    # accept_model_drift: the committed model predates the current synthetic generator (its follow-up
    # cadence changed); the drift it shows is recorded in run.json and summary.md (issue 12)
    run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=out, xlsx=True,
                               accept_model_drift=True))
    return out
