"""Run history: the runs under a runs root (oldest first), a run's predecessor, tier transitions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from risk.errors import InputFileError
from risk.run.folder import RunFolder


def find_runs(runs_root: str | Path) -> list[Path]:
    """Run folders directly under `runs_root` that hold tiers.parquet, oldest as_of first; folders still
    being written (hidden temporary siblings) are left out."""
    root = Path(runs_root)
    if not root.is_dir():
        raise InputFileError(str(root), "runs folder does not exist")
    runs = []
    for tiers in root.glob(f"*/{RunFolder(root).tiers.name}"):
        if tiers.parent.name.startswith("."):
            continue
        as_of = RunFolder(tiers.parent).as_of
        runs.append((as_of.isoformat() if as_of else "", tiers.parent))
    return [run for _, run in sorted(runs)]


def previous_run(out: Path, as_of: date) -> Path | None:
    """The latest sibling run of `out` with an earlier as-of date (for tier transitions), if any."""
    out = Path(out)
    if not out.parent.is_dir():
        return None
    earlier = [
        run
        for run in find_runs(out.parent)
        if run.resolve() != out.resolve() and (run_as_of := RunFolder(run).as_of) and run_as_of < as_of
    ]
    return earlier[-1] if earlier else None


def transition_counts(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Persons by (tier_then, tier_now): 'new' for people not tiered in the previous run, 'left' for
    people tiered then but not now (ended management, died, moved). Columns tier_then, tier_now, n;
    sorted by tier_then, tier_now."""
    merged = (
        current[["person_id", "tier"]]
        .drop_duplicates()
        .merge(
            previous[["person_id", "tier"]].drop_duplicates(),
            on="person_id",
            how="outer",
            suffixes=("_now", "_then"),
        )
    )
    merged["tier_now"] = merged["tier_now"].fillna("left")
    merged["tier_then"] = merged["tier_then"].fillna("new")
    return merged.groupby(["tier_then", "tier_now"]).size().rename("n").reset_index()


def transitions_by_tier(current: pd.DataFrame, previous: pd.DataFrame | None) -> dict[str, dict[str, int]]:
    """The run manifest's form of transition_counts: {tier_then: {tier_now: persons}} ({} without a
    previous run)."""
    if previous is None:
        return {}
    result: dict[str, dict[str, int]] = {}
    for row in transition_counts(previous, current).itertuples(index=False):
        result.setdefault(str(row.tier_then), {})[str(row.tier_now)] = int(row.n)
    return result
