"""Tier indicators from run folders' tiers.parquet: tier mix (over time) and tier transitions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from risk.errors import InputFileError, RiskUserError
from risk.indicators.stats import wilson_interval
from risk.indicators.suppression import primary_mask, suppress_crosstab

TIERS = ("red", "yellow", "green")


def _tiers_path(run_dir: Path) -> Path:
    path = Path(run_dir) / "tiers.parquet"
    if not path.is_file():
        raise InputFileError(str(path), "the run has no tiers.parquet (run `risk nightly` to make one)")
    return path


def find_runs(runs_root: str | Path) -> list[Path]:
    """Run folders directly under `runs_root` that hold tiers.parquet, oldest as_of first."""
    root = Path(runs_root)
    if not root.is_dir():
        raise InputFileError(str(root), "runs folder does not exist")
    runs = []
    for tiers in root.glob("*/tiers.parquet"):
        if tiers.parent.name.startswith("."):  # a run still being written (temporary sibling)
            continue
        runs.append((_run_as_of(tiers.parent), tiers.parent))
    return [run for _, run in sorted(runs)]


def _run_as_of(run_dir: Path) -> str:
    manifest = run_dir / "run.json"
    if manifest.is_file():
        try:
            return str(json.loads(manifest.read_text(encoding="utf-8"))["as_of"])
        except (OSError, ValueError, KeyError):
            pass
    found = duckdb.sql(f"SELECT max(as_of) FROM read_parquet('{_tiers_path(run_dir)}')").fetchall()[0]
    return str(found[0]) if found and found[0] is not None else ""


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
            f"FROM read_parquet('{_tiers_path(Path(run_dir))}') GROUP BY tier"
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
    pairs = duckdb.sql(
        f"SELECT coalesce(a.tier, 'new') AS tier_then, coalesce(b.tier, 'left') AS tier_now, count(*) AS n "
        f"FROM (SELECT DISTINCT person_id, tier FROM read_parquet('{earlier}')) a "
        f"FULL OUTER JOIN (SELECT DISTINCT person_id, tier FROM read_parquet('{later}')) b "
        f"ON a.person_id = b.person_id GROUP BY ALL"
    ).df()
    table = pairs.pivot_table(index="tier_then", columns="tier_now", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(index=[*TIERS, "new"], columns=[*TIERS, "left"], fill_value=0).astype("int64")
    table.index.name, table.columns.name = "tier_then", "tier_now"
    if min_count:
        return suppress_crosstab(table, min_count)
    return table
