"""RunFolder stages a run in a hidden sibling and publishes it in one step; RunManifest is run.json, typed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from risk.errors import InputFileError, RiskUserError
from risk.run.folder import RunFolder
from risk.run.manifest import RunManifest


def _write_run(run: RunFolder, as_of: date, marker: str) -> None:
    run.write_manifest(RunManifest(as_of=as_of, run_id=marker, versions={"rule_set": "r1"}))
    (run.path / "marker.txt").write_text(marker, encoding="utf-8")


def test_a_staged_run_appears_only_when_published_and_replaces_the_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder.staged(out) as run:
        _write_run(run, date(2025, 1, 1), "first")
        assert run.path.parent == tmp_path and run.path.name.startswith(".run.staging-")
        assert not out.exists()
        published = run.publish(out)
    assert published.read_manifest().run_id == "first" and not run.path.exists()
    with RunFolder.staged(out) as run:
        _write_run(run, date(2025, 2, 1), "second")
        assert (out / "marker.txt").read_text(encoding="utf-8") == "first"  # untouched until publish
        run.publish(out)
    assert RunFolder(out).as_of == date(2025, 2, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging or retired folder left


def test_a_failed_stage_leaves_no_staging_folder_and_the_earlier_run_intact(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder.staged(out) as run:
        _write_run(run, date(2025, 1, 1), "first")
        run.publish(out)
    with pytest.raises(ValueError, match="stage failed"), RunFolder.staged(out) as run:
        _write_run(run, date(2025, 2, 1), "second")
        raise ValueError("stage failed")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert RunFolder(out).read_manifest().run_id == "first"


def test_a_folder_that_is_not_a_run_is_never_staged_over(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(RiskUserError, match="not an earlier run folder"), RunFolder.staged(out):
        pass


def test_manifest_round_trip_and_partial_manifests(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    with pytest.raises(InputFileError, match="run manifest not found"):
        run.read_manifest()
    (tmp_path / "run.json").write_text('{"as_of": "2024-12-31", "counts": {"tiered": 3}}', encoding="utf-8")
    manifest = run.read_manifest()
    assert manifest.as_of == date(2024, 12, 31) and manifest.counts == {"tiered": 3}
    assert manifest.run_id is None and manifest.version("model", "none") == "none"
    assert RunManifest.from_dict(manifest.to_dict()) == manifest
    (tmp_path / "run.json").write_text('{"run_id": "x"}', encoding="utf-8")
    with pytest.raises(InputFileError, match="no as_of"):
        run.read_manifest()
