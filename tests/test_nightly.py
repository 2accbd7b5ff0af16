"""Nightly job: complete run folder, identical re-runs, no partial run on failure, versions recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.nightly import NightlyOptions, run_nightly
from risk.run.history import transitions_by_tier as tier_transitions
from tests.conftest import SMALL_COUNTY_AS_OF


def test_run_folder_is_complete_and_records_versions(small_run: Path):
    manifest = json.loads((small_run / "run.json").read_text(encoding="utf-8"))
    for key in ("data_fingerprint", "contract", "rule_set", "model", "code", "feature_set"):
        assert manifest["versions"][key], key
    assert manifest["as_of"] == SMALL_COUNTY_AS_OF.isoformat()
    for table, row in manifest["validation"].items():
        assert row["read"] == row["accepted"] + row["quarantined"], table
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    features = pd.read_parquet(small_run / "features.parquet")
    assert sorted(tiers["person_id"]) == sorted(features["person_id"])
    assert set(tiers["tier"]) <= {"red", "yellow", "green"}
    assert manifest["counts"]["tiered"] == len(tiers)
    assert sum(manifest["counts"]["tier"].values()) == len(tiers)
    assert (small_run / "summary.md").read_text(encoding="utf-8").startswith("# Nightly run")
    assert (small_run / "lists" / "priority_all.csv").exists()
    assert any((small_run / "lists" / "xlsx").glob("*.xlsx"))
    unmanaged = pd.read_csv(small_run / "lists" / "unmanaged_key_population.csv", encoding="utf-8-sig")
    needed = {"name", "phone", "village_id", "condition", "evidence_zh", "evidence_en"}
    assert needed <= set(unmanaged.columns)
    assert len(unmanaged) == manifest["counts"]["unmanaged"] > 0


def test_run_json_records_the_rule_set(small_run: Path):
    """run.json names the rule set by version and by the fingerprint of its file, read back typed."""
    from risk.run.folder import RunFolder
    from risk.tiers.rule_set import load_rule_set

    manifest = RunFolder(small_run).read_manifest()
    rule_set = load_rule_set()
    assert manifest.version("rule_set") == rule_set.version
    assert manifest.version("rule_set_fingerprint") == rule_set.fingerprint
    assert manifest.as_of == SMALL_COUNTY_AS_OF
    on_disk = json.loads((small_run / "run.json").read_text(encoding="utf-8"))
    assert manifest.to_dict() == on_disk  # the typed manifest is all of run.json, nothing dropped


def test_combined_tier_never_below_rule_red(small_run: Path):
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    assert (tiers.loc[tiers["tier_rules"] == "red", "tier"] == "red").all()


def test_next_due_follows_the_combined_tier(small_run: Path):
    tiers = pd.read_parquet(small_run / "tiers.parquet")
    assert (tiers["days_overdue"] >= 0).all()
    overdue = tiers[tiers["days_overdue"] > 0]
    gap = (pd.Timestamp(SMALL_COUNTY_AS_OF) - pd.to_datetime(overdue["next_due_on"])).dt.days
    assert (gap == overdue["days_overdue"]).all()


@pytest.mark.slow
def test_rerun_gives_identical_outputs(small_county: Path, small_run: Path, tmp_path: Path):
    again = tmp_path / "again"
    run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=again, xlsx=False))
    for name in ("features.parquet", "tiers.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(small_run / name), pd.read_parquet(again / name))
    first = pd.read_csv(small_run / "lists" / "priority_all.csv", encoding="utf-8-sig")
    second = pd.read_csv(again / "lists" / "priority_all.csv", encoding="utf-8-sig")
    pd.testing.assert_frame_equal(first, second)
    one = json.loads((small_run / "run.json").read_text())
    two = json.loads((again / "run.json").read_text())
    assert one["versions"] == two["versions"] and one["counts"]["tier"] == two["counts"]["tier"]


@pytest.mark.slow
def test_failed_run_leaves_no_run_folder_and_keeps_the_old_one(
    small_county: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import risk.products.lists as lists

    out = tmp_path / "run"
    run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=out, xlsx=False))
    before = (out / "tiers.parquet").read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(lists, "build_priority_list", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=out, xlsx=False))
    assert (out / "tiers.parquet").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=fresh, xlsx=False))
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_unmanaged_list_written_beside_the_tiers_is_the_one_written_in_process(
    small_run: Path, tmp_path: Path
):
    from risk.products.lists import LIST_PERSON_COLUMNS, write_csv
    from risk.products.unmanaged import find_unmanaged, unmanaged_list
    from risk.run.tables import canonical_connection

    persons = pd.read_parquet(small_run / "canonical" / "persons.parquet", columns=LIST_PERSON_COLUMNS)
    found = find_unmanaged(canonical_connection(small_run / "canonical"), SMALL_COUNTY_AS_OF)
    write_csv(unmanaged_list(persons, found), tmp_path / "in_process.csv")
    written = small_run / "lists" / "unmanaged_key_population.csv"
    assert written.read_bytes() == (tmp_path / "in_process.csv").read_bytes()


def test_a_failing_unmanaged_query_beside_the_tiers_fails_the_run_and_leaves_none(
    small_county: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import multiprocessing
    import os

    import risk.products.unmanaged as unmanaged

    parent = os.getpid()

    def explode(*args, **kwargs):
        raise RuntimeError(f"unmanaged query failed in the {'worker' if os.getpid() != parent else 'main'}")

    monkeypatch.setattr(unmanaged, "find_unmanaged", explode)  # the forked worker inherits it
    out = tmp_path / "runs" / "run"
    with pytest.raises(RuntimeError, match="failed in the worker"):
        run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=out, xlsx=True))
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no run, no staged folder
    assert multiprocessing.active_children() == []


def test_transitions_count_moves_new_and_left():
    previous = pd.DataFrame({"person_id": ["a", "b", "c"], "tier": ["green", "red", "yellow"]})
    current = pd.DataFrame({"person_id": ["a", "b", "d"], "tier": ["red", "red", "green"]})
    assert tier_transitions(current, previous) == {
        "green": {"red": 1},
        "red": {"red": 1},
        "yellow": {"left": 1},
        "new": {"green": 1},
    }
    assert tier_transitions(current, None) == {}


def test_cli_nightly_missing_input_is_one_clear_line(tmp_path: Path):
    from typer.testing import CliRunner

    from risk.cli import app

    result = CliRunner().invoke(
        app, ["nightly", str(tmp_path / "nope"), "--as-of", "2024-06-30", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_backfill_does_not_quarantine_events_after_as_of(small_county: Path, small_run: Path):
    """The small county runs to 2024-12-31 and the run is as of 2024-06-30: later events are valid data
    that the features ignore; only the generator's deliberately future-dated rows (years ahead) are
    quarantined as future_date."""
    quarantine = pd.read_parquet(small_run / "quarantine.parquet")
    injected = pd.read_parquet(small_county / "_synth" / "dirty_rows.parquet")
    assert (quarantine["reason_code"] == "future_date").sum() == (injected["kind"] == "future_date").sum()
    vitals = pd.read_parquet(small_run / "canonical" / "vitals.parquet")
    assert vitals["measured_at"].max() > pd.Timestamp(SMALL_COUNTY_AS_OF)


@pytest.mark.slow
def test_a_date_before_anyone_was_enrolled_gives_an_empty_but_complete_run(
    small_county: Path, tmp_path: Path
) -> None:
    from datetime import date

    out = tmp_path / "run-2001"
    run_nightly(NightlyOptions(input_dir=small_county, as_of=date(2001, 1, 1), out=out, xlsx=True))
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["tiered"] == 0
    assert pd.read_parquet(out / "tiers.parquet").empty
    assert pd.read_csv(out / "lists" / "priority_all.csv", encoding="utf-8-sig").empty


def test_a_previous_run_that_is_not_a_run_folder_is_refused_before_any_work(
    small_county: Path, tmp_path: Path
) -> None:
    from risk.errors import RiskUserError

    out = tmp_path / "run"
    with pytest.raises(RiskUserError, match="not a run folder"):
        run_nightly(
            NightlyOptions(
                input_dir=small_county,
                as_of=SMALL_COUNTY_AS_OF,
                out=out,
                previous_run=tmp_path / "no-such-run",
            )
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_an_output_that_is_not_a_run_folder_is_never_replaced(
    small_county: Path, tmp_path: Path, existing: str
) -> None:
    from risk.errors import RiskUserError

    out = tmp_path / "mine"
    if existing == "file":
        out.write_text("notes", encoding="utf-8")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("notes", encoding="utf-8")
    with pytest.raises(RiskUserError, match="not a folder|not an earlier run folder"):
        run_nightly(NightlyOptions(input_dir=small_county, as_of=SMALL_COUNTY_AS_OF, out=out))
    assert (
        out.read_text(encoding="utf-8")
        if existing == "file"
        else (out / "notes.txt").read_text(encoding="utf-8")
    ) == "notes"


def test_run_record_for_the_county_it_person(small_run: Path):
    manifest = json.loads((small_run / "run.json").read_text(encoding="utf-8"))
    assert manifest["started_at"] <= manifest["ended_at"] and manifest["started_at"][:4] >= "2025"
    assert manifest["status"] in ("succeeded", "succeeded with warnings")
    assert manifest["id_key"] in ("county", "development")
    if manifest["id_key"] == "development":
        assert any("RISK_ID_KEY" in w for w in manifest["warnings"])
        assert manifest["status"] == "succeeded with warnings"
    for key in ("validation_rules", "indicators", "python", "duckdb", "pandas"):
        assert manifest["versions"][key], key
    summary = (small_run / "summary.md").read_text(encoding="utf-8")
    assert "- status: **" in summary and "national-ID key" in summary and "duckdb" in summary
    # quarantine for people: CSV with Chinese headers and XLSX, the same rows as the Parquet file
    quarantine = pd.read_parquet(small_run / "quarantine.parquet")
    as_csv = pd.read_csv(small_run / "quarantine.csv", encoding="utf-8-sig")
    assert list(as_csv.columns)[:4] == ["表", "原文件行号", "档案号", "原因代码"]
    assert len(as_csv) == len(quarantine)
    assert len(pd.read_excel(small_run / "quarantine.xlsx", sheet_name="隔离记录")) == len(quarantine)
    assert set(manifest["quarantine_files"]) == {"quarantine.parquet", "quarantine.csv", "quarantine.xlsx"}


def test_warnings_are_one_line_and_publish_is_only_reported_when_it_runs(
    small_county: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    import warnings

    from pipelines.run_record import RunRecord

    record = RunRecord()
    with caplog.at_level("WARNING"), record.collect_warnings():
        warnings.warn("something   odd\n happened", UserWarning, stacklevel=1)
    assert record.warnings == ["something odd happened"]
    assert [r.getMessage() for r in caplog.records] == ["something odd happened"]
    caplog.clear()
    with caplog.at_level("INFO", logger="risk.nightly"):
        run_nightly(
            NightlyOptions(
                input_dir=small_county,
                as_of=SMALL_COUNTY_AS_OF,
                out=tmp_path / "r",
                xlsx=False,
                use_model=False,
            )
        )
    stages = [r.getMessage() for r in caplog.records if r.name == "risk.nightly"]
    assert any(m.startswith("[5/5] report") for m in stages)
    assert not any("publish" in m for m in stages)


def test_the_development_key_is_logged_once_per_run(
    small_county: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    from risk import privacy

    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setenv(privacy.DEV_KEY_ENV, "1")
    privacy._key.cache_clear()  # as in a fresh process: the key is read (and reported) by this run
    try:
        with caplog.at_level("WARNING"):
            result = run_nightly(
                NightlyOptions(
                    input_dir=small_county,
                    as_of=SMALL_COUNTY_AS_OF,
                    out=tmp_path / "r",
                    xlsx=False,
                    use_model=False,
                    calls=False,
                )
            )
    finally:
        privacy._key.cache_clear()
    about_the_key = [r.getMessage() for r in caplog.records if "development key" in r.getMessage()]
    assert about_the_key == [privacy.DEV_KEY_WARNING]
    assert privacy.DEV_KEY_WARNING in result.manifest["warnings"]
    assert result.manifest["id_key"] == "development"


def test_timings_give_the_parts_of_the_lists_stage_with_the_call_lists_on_their_own(small_run: Path):
    timings = json.loads((small_run / "timings.json").read_text(encoding="utf-8"))
    parts = timings["parts"]
    assert set(parts) == {
        "lists.priority",
        "lists.unmanaged",  # waiting for the unmanaged list, written beside the tiers stage
        "lists.calls",
        "lists.csv_and_workbooks",
        "lists.workload",
        "unmanaged.beside",  # the worker's own seconds: not part of the lists stage
    }
    for part in parts.values():
        assert part["seconds"] >= 0 and part["cpu_seconds"] >= 0
    in_stage = [part["seconds"] for name, part in parts.items() if name.startswith("lists.")]
    assert sum(in_stage) <= timings["seconds"]["lists"] + 0.01
    assert any((small_run / "calls" / "xlsx").glob("*.xlsx"))  # the call workbooks, by the list workers
