"""Shared fixtures: one small synthetic county and one nightly run over it, built once per test session
(once in all, not once per xdist worker: the first worker builds them under a file lock, the others reuse
the folder). A test that uses a fixture generating a whole synthetic county is in the slow lane."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

# Test data is synthetic: the development ID key, asked for explicitly as any user must (risk/privacy.py).
# A county key in the developer's shell must not reach the tests: it would change every keyed hash (the
# fingerprints and recorded digests were taken with the development key) and it is not the tests' to use.
os.environ.pop("RISK_ID_KEY", None)
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


# Fixtures that generate a whole synthetic county (and validate or run it): the tests using them are slow.
WHOLE_COUNTY_FIXTURES = frozenset({"small_county", "small_run", "counties", "patients"})


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if WHOLE_COUNTY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder `name` filled by build(folder) once for the whole session, shared by the xdist workers.
    Tests only read it."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # the workers' common base folder
    folder = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / f"{name}.complete").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (root / f"{name}.complete").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


@pytest.fixture(scope="session")
def small_county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw input folder (data contract) of a 4,000-resident synthetic county, 2021-2024."""
    from risk.synth import SynthConfig, generate_county

    def build(folder: Path) -> None:
        years = {"start": date(2021, 1, 1), "end": date(2024, 12, 31)}
        config = SynthConfig(persons=SMALL_COUNTY_PERSONS, seed=SMALL_COUNTY_SEED, **years)
        generate_county(config, folder / "input")

    return built_once(tmp_path_factory, "county", build) / "input"


@pytest.fixture(scope="session")
def small_run(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nightly run folder over the small county (rules and the committed model, if any)."""
    from pipelines.nightly import NightlyOptions, run_nightly

    # no accept_model_drift: the committed model was trained on the current generator's county, so a drift
    # above the refusal threshold here would stop the fixture (issue 12's check; docs/model.md)
    def build(folder: Path) -> None:
        out = folder / "run"
        run_nightly(NightlyOptions(small_county, SMALL_COUNTY_AS_OF, out, xlsx=True))

    return built_once(tmp_path_factory, "runs", build) / "run"
