"""Policy indicators (control rates, standardised management, signing, admissions, complications, care
outside the county, cost) per period and breakdown, with Wilson intervals and small-cell suppression.

Definitions are data: risk/definitions/indicators.yaml. Computed with DuckDB over a run's canonical tables.
"""

from risk.indicators.definitions import Indicator, IndicatorSet, indicator_set
from risk.indicators.engine import LEVELS, compute_indicator, person_rows
from risk.indicators.periods import Period, parse_period, periods_between, split_period, trailing_periods
from risk.indicators.run import Run, open_run
from risk.indicators.suppression import suppress_crosstab, suppress_indicator_table
from risk.indicators.tiers import tier_mix, tier_transitions
from risk.run.history import find_runs

__all__ = [
    "LEVELS",
    "Indicator",
    "IndicatorSet",
    "Period",
    "Run",
    "compute_indicator",
    "find_runs",
    "indicator_set",
    "open_run",
    "parse_period",
    "periods_between",
    "person_rows",
    "split_period",
    "suppress_crosstab",
    "suppress_indicator_table",
    "tier_mix",
    "tier_transitions",
    "trailing_periods",
]
