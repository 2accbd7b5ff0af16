"""Validation against the synthetic county: the injected dirty rows are quarantined with the right reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from risk.validate import validate_folder
from risk.validate.schema import canonical_schema

pytest.importorskip("risk.synth")

# Dirt the generator injects (definitions/synth_county.yaml) -> the reason validation must give.
# A swapped pair can also put a diastolic value below the systolic range (out_of_range comes first).
EXPECTED_REASONS = {
    "before_birth": {"before_birth"},
    "discharge_before_admission": {"end_before_start"},
    "duplicate_row": {"duplicate"},
    "fund_exceeds_cost": {"fund_exceeds_cost"},
    "future_date": {"future_date"},
    "icd10_typo": {"malformed_icd10"},
    "impossible_value": {"out_of_range"},
    "swapped_sbp_dbp": {"sbp_not_above_dbp", "out_of_range"},
    "unknown_condition": {"unknown_condition"},
    "unknown_person": {"unknown_person"},
}
# After the generated history ends (2024-12-31), so clean late discharges are not "in the future".
AS_OF = date(2025, 12, 31)


@pytest.fixture(scope="module")
def validated(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("validated") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RISK_ID_KEY", "test-key")
        validate_folder(small_county, out, as_of=AS_OF)
    dirty = pd.read_parquet(small_county / "_synth" / "dirty_rows.parquet")
    return out, dirty


def _joined(out: Path, dirty: pd.DataFrame) -> pd.DataFrame:
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    return dirty.merge(quarantine, how="left", left_on=["table", "row"], right_on=["table", "source_row"])


def test_injected_invalid_rows_get_their_reason(validated: tuple[Path, pd.DataFrame]) -> None:
    out, dirty = validated
    invalid = _joined(out, dirty[dirty["invalid"]])
    assert len(invalid) > 20, "the small county should carry some dirt"
    assert set(invalid["kind"]) <= set(EXPECTED_REASONS), "a new dirt kind needs an expected reason here"
    right = [reason in EXPECTED_REASONS[kind] for kind, reason in invalid[["kind", "reason_code"]].values]
    wrong = invalid[[not ok for ok in right]]
    assert wrong.empty, wrong[["table", "row", "kind", "reason_code", "detail"]].head(10).to_string()


def test_odd_but_valid_rows_are_accepted(validated: tuple[Path, pd.DataFrame]) -> None:
    out, dirty = validated
    also_invalid = set(map(tuple, dirty.loc[dirty["invalid"], ["table", "row"]].values))
    valid = _joined(out, dirty[~dirty["invalid"]])
    valid = valid[[(t, r) not in also_invalid for t, r in valid[["table", "row"]].values]]
    assert len(valid) > 0
    quarantined = valid[valid["reason_code"].notna()]
    # Only coincidences with other rules (e.g. a lab in mg/dL that is also a duplicate) may quarantine them.
    shown = quarantined[["table", "row", "kind", "reason_code"]].to_string()
    assert len(quarantined) <= 0.02 * len(valid), shown


def test_clean_synthetic_rows_are_almost_all_accepted(validated: tuple[Path, pd.DataFrame]) -> None:
    out, dirty = validated
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    marked = set(map(tuple, dirty[["table", "row"]].values))
    unexplained = quarantine[[(t, r) not in marked for t, r in quarantine[["table", "source_row"]].values]]
    import json

    summary = json.loads((out / "validation.json").read_text(encoding="utf-8"))
    assert summary["rows_read"] == summary["rows_accepted"] + summary["rows_quarantined"]
    assert len(unexplained) <= 0.001 * summary["rows_read"], unexplained.groupby(
        ["table", "reason_code"]).size().to_string()


def test_synthetic_canonical_tables_satisfy_the_schema(validated: tuple[Path, pd.DataFrame]) -> None:
    out, _ = validated
    for path in sorted((out / "canonical").glob("*.parquet")):
        canonical_schema(path.stem).validate(pd.read_parquet(path))
