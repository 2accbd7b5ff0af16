"""The quarantine CSV/XLSX of a nightly run are written by a forked worker beside the later stages
(pipelines/nightly.py `_quarantine_exports`): the run waits for them, and their failure fails the run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.support.hostile_county import AS_OF, write_hostile_county


def test_quarantine_exports_are_complete_when_the_run_is_published(tmp_path: Path) -> None:
    from pipelines.nightly import NightlyOptions, run_nightly

    out = tmp_path / "run"
    run_nightly(
        NightlyOptions(
            input_dir=write_hostile_county(tmp_path / "in"), as_of=AS_OF, out=out, use_model=False, xlsx=False
        )
    )
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(quarantine) > 0
    assert len(pd.read_csv(out / "quarantine.csv", encoding="utf-8-sig")) == len(quarantine)
    assert len(pd.read_excel(out / "quarantine.xlsx")) == len(quarantine)


def _broken_export(folder: Path) -> int:  # module level: the worker is sent it by name
    raise OSError("disk full while writing quarantine.xlsx")


def test_a_failed_quarantine_export_fails_the_run_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.nightly as nightly

    monkeypatch.setattr(nightly, "write_quarantine_exports", _broken_export)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        nightly.run_nightly(
            nightly.NightlyOptions(
                input_dir=write_hostile_county(tmp_path / "in"),
                as_of=AS_OF,
                out=out,
                use_model=False,
                xlsx=False,
            )
        )
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def _export_after_features(folder: Path) -> int:  # module level: the worker is sent it by name
    from pipelines.run_record import write_quarantine_exports
    from risk.run.folder import FEATURES

    if not (folder / FEATURES).exists():
        raise AssertionError("the quarantine exports started before the feature stage was done")
    return write_quarantine_exports(folder)


def test_the_quarantine_exports_start_after_the_feature_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feature stage keeps both cores busy; the exports (xlsxwriter, one core) run beside the tier and
    list stages instead."""
    import pipelines.nightly as nightly

    monkeypatch.setattr(nightly, "write_quarantine_exports", _export_after_features)
    out = tmp_path / "run"
    nightly.run_nightly(
        nightly.NightlyOptions(
            input_dir=write_hostile_county(tmp_path / "in"), as_of=AS_OF, out=out, use_model=False, xlsx=False
        )
    )
    assert (out / "quarantine.xlsx").exists()
