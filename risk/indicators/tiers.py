"""Tier indicators from run folders' tiers.parquet: tier mix (over time) and tier transitions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from risk.errors import InputFileError, RiskUserError
from risk.indicators.suppression import primary_mask, suppress_crosstab
from risk.run.folder import RunFolder
from risk.run.history import transition_counts
from risk.run.tables import parquet_source
from risk.schema import TIERS_WORST_FIRST as TIERS
from risk.stats import wilson_interval


def _tiers_path(run_dir: Path) -> Path:
    path = RunFolder(Path(run_dir)).tiers
    if not path.is_file():
        raise InputFileError(str(path), "the run has no tiers.parquet (run `risk nightly` to make one)")
    return path


def tier_mix(
    run_dirs: Sequence[str | Path], min_count: int | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """One row per run and tier: as_of, run, tier, persons, share (+ Wilson interval).

    With `min_count`, tiers with fewer than that many persons are blanked (`suppressed` = 'primary');
    run totals are all shown, so a second-smallest tier is blanked too (secondary).
    """
    rows = []
    for run_dir in run_dirs:
        counts = duckdb.sql(
            f"SELECT CAST(max(as_of) AS VARCHAR) AS as_of, tier, count(*) AS persons "
            f"FROM {parquet_source(_tiers_path(Path(run_dir)))} GROUP BY tier"
        ).df()
        as_of = counts["as_of"].dropna().max() if len(counts) else ""
        for tier in TIERS:
            found = counts.loc[counts["tier"] == tier, "persons"]
            rows.append(
                {
                    "as_of": as_of,
                    "run": Path(run_dir).name,
                    "tier": tier,
                    "persons": int(found.iloc[0]) if len(found) else 0,
                }
            )
    mix = pd.DataFrame(rows, columns=["as_of", "run", "tier", "persons"])
    totals = mix.groupby("run", sort=False)["persons"].transform("sum")
    mix["share"] = mix["persons"] / totals.where(totals > 0)
    mix["ci_low"], mix["ci_high"] = wilson_interval(mix["persons"], totals, alpha)
    if min_count:
        from risk.indicators.suppression import complementary_mask

        size = mix["persons"].to_numpy(float)
        primary = primary_mask(size, totals.to_numpy(float), min_count)
        groups = [(rows.index.to_numpy(), None) for _, rows in mix.groupby("run", sort=False)]
        hidden = complementary_mask(primary, size, groups, min_count)
        mix["suppressed"] = [
            "primary" if p else "secondary" if h else "" for p, h in zip(primary, hidden, strict=True)
        ]
        mix["persons"] = mix["persons"].astype("Int64").mask(hidden)
        for column in ("share", "ci_low", "ci_high"):
            mix.loc[hidden, column] = float("nan")
    return mix


def tier_transitions(
    earlier_run: str | Path, later_run: str | Path, min_count: int | None = None
) -> pd.DataFrame:
    """Persons by (tier in the earlier run) x (tier in the later run).

    Rows: red, yellow, green, new (not tiered earlier); columns: red, yellow, green, left (not tiered later).
    With `min_count`, small cells are suppressed with row and column totals protected.
    """
    earlier, later = _tiers_path(Path(earlier_run)), _tiers_path(Path(later_run))
    if earlier.resolve() == later.resolve():
        raise RiskUserError("tier transitions need two different runs")
    then, now = (pd.read_parquet(path, columns=["person_id", "tier"]) for path in (earlier, later))
    pairs = transition_counts(then, now)
    table = pairs.pivot_table(index="tier_then", columns="tier_now", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(index=[*TIERS, "new"], columns=[*TIERS, "left"], fill_value=0).astype("int64")
    table.index.name, table.columns.name = "tier_then", "tier_now"
    if min_count:
        return suppress_crosstab(table, min_count)
    return table
