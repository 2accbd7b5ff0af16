"""Confidence intervals for rates."""

from __future__ import annotations

import warnings

import numpy as np
from statsmodels.stats.proportion import proportion_confint


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval; NaN where there are no trials."""
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    low = np.full(trials.shape, np.nan)
    high = np.full(trials.shape, np.nan)
    ok = trials > 0
    if ok.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low[ok], high[ok] = proportion_confint(successes[ok], trials[ok], alpha=alpha, method="wilson")
    return low, high
