"""Integration: a sample of the Synthea STU3 bundles (shared data set) -> import -> `risk validate`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from risk.interop.fhir import import_fhir

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shared data set sits beside the checkout (/work/main) or beside the worktrees folder (/work/wt/x).
SYNTHEA = next(
    (p for p in (root / "shared" / "data" / "synthea-fhir-stu3" / "bundles.tar.gz"
                 for root in (REPO_ROOT.parent, REPO_ROOT.parent.parent)) if p.is_file()),
    REPO_ROOT.parent / "shared" / "data" / "synthea-fhir-stu3" / "bundles.tar.gz",
)
SAMPLE_BUNDLES = 40

pytestmark = pytest.mark.skipif(
    not SYNTHEA.is_file(), reason=f"shared Synthea bundles not found at {SYNTHEA}"
)


def synthea_sample(target: Path, n: int = SAMPLE_BUNDLES) -> Path:
    """The first n bundles of the shared archive, as a smaller tar.gz (archive order is fixed)."""
    taken = 0
    with tarfile.open(SYNTHEA, "r|gz") as source, tarfile.open(target, "w:gz") as sample:
        for member in source:
            if not member.isfile():
                continue
            sample.addfile(member, source.extractfile(member))
            taken += 1
            if taken == n:
                break
    return target


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Integration hook for later stages (nightly): an input folder imported from real FHIR bundles."""
    root = tmp_path_factory.mktemp("synthea")
    import_fhir(synthea_sample(root / "sample.tar.gz"), root / "input")
    return root / "input"


def test_sample_imports_every_patient_and_core_tables(imported: Path) -> None:
    report = json.loads((imported / "_import" / "report.json").read_text())
    assert report["documents"] == {"read": SAMPLE_BUNDLES, "bundles": SAMPLE_BUNDLES, "quarantined": 0}
    assert report["rows_written"]["persons"] == SAMPLE_BUNDLES
    for table in ("conditions", "vitals", "labs", "encounters", "prescriptions"):
        assert report["rows_written"][table] > 0, table
    assert report["resources"]["Observation"]["unmapped"] > 0  # Synthea survey codes are reported
    assert "Immunization" in report["resource_types_not_imported"]
    conditions = pd.read_parquet(imported / "conditions.parquet")
    assert "hypertension" in set(conditions["condition"])


def test_validate_accepts_the_imported_sample(imported: Path, tmp_path: Path) -> None:
    from risk.validate import validate_folder

    validate_folder(imported, tmp_path / "validated")
    validation = json.loads((tmp_path / "validated" / "validation.json").read_text())
    tables = validation["tables"]
    for table in ("persons", "conditions", "encounters", "prescriptions", "follow_ups"):
        assert tables[table]["rows_quarantined"] == 0, (table, tables[table])
    # Children's vitals fall outside the contract's adult body ranges and are quarantined by validate.
    for table in ("vitals", "labs"):
        assert tables[table]["rows_accepted"] >= 0.7 * tables[table]["rows_read"], (table, tables[table])
    canonical = pd.read_parquet(tmp_path / "validated" / "canonical" / "labs.parquet")
    assert set(canonical.loc[canonical["test"] == "fpg", "unit"]) == {"mmol/L"}  # mg/dL normalised


@pytest.mark.slow  # a whole nightly run
def test_nightly_tiers_and_lists_the_imported_sample(imported: Path, tmp_path: Path) -> None:
    """End to end on real third-party data: FHIR -> nightly (validate, features, tiers, lists, report)
    -> indicators."""
    from datetime import date

    from pipelines.nightly import NightlyOptions, run_nightly
    from risk.indicators import compute_indicator, open_run
    from risk.indicators.periods import parse_period

    run_dir = tmp_path / "run"
    result = run_nightly(NightlyOptions(input_dir=imported, as_of=date(2019, 12, 31), out=run_dir,
                                        use_model=False, xlsx=False))
    tiers = pd.read_parquet(run_dir / "tiers.parquet")
    conditions = pd.read_parquet(imported / "conditions.parquet")
    chronic = conditions["condition"].isin(["hypertension", "diabetes_t2"])
    registered = set(conditions.loc[chronic, "person_id"])
    assert 0 < len(tiers) <= len(registered)
    assert set(tiers["person_id"]) <= registered
    assert set(tiers["tier"]) <= {"red", "yellow", "green"}
    assert result.manifest["counts"]["tiered"] == len(tiers)
    listing = pd.read_csv(run_dir / "lists" / "priority_all.csv", encoding="utf-8-sig")
    assert sorted(listing["person_id"]) == sorted(tiers["person_id"])
    with open_run(run_dir) as run:
        table = compute_indicator(run, "bp_control_cn", [parse_period("2019")], by="county")
    assert table["denominator"].iloc[0] > 0


@pytest.mark.slow
def test_cli_import_and_nightly_on_the_whole_archive(tmp_path: Path) -> None:
    """The README's commands on all 1,461 bundles: an unmanaged candidate without claims evidence crashed
    `risk nightly` under pandas 3 (str + all-NA Int64), although the 40-bundle sample above passed."""
    from typer.testing import CliRunner

    from risk.cli import app

    runner = CliRunner()
    imported = runner.invoke(app, ["import", "fhir", str(SYNTHEA), "--out", str(tmp_path / "synthea")])
    assert imported.exit_code == 0, imported.output
    result = runner.invoke(app, ["nightly", str(tmp_path / "synthea"), "--as-of", "2019-12-31",
                                 "--out", str(tmp_path / "run"), "--no-model", "--no-xlsx"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["unmanaged"] > 0 and manifest["counts"]["tiered"] > 0
    from risk.privacy import DEV_KEY_WARNING

    assert [w for w in manifest["warnings"] if w != DEV_KEY_WARNING] == []  # the ID-key state aside
