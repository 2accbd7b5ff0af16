"""Metrics of the evaluation harness. Bootstrap resamples are shared by all estimators (paired comparison)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import expit, logit

PROBABILITY_CLIP = 1e-6
MAX_CELLS_PER_CHUNK = 4_000_000  # resamples x rows held in memory at once


def _levels(score: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank level of each row (0 = highest score); ties share a level."""
    _, inverse = np.unique(-np.asarray(score, dtype="float64"), return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if len(inverse) else 0


def _auc_ap_from_level_counts(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision from per-level event / non-event counts (levels by descending score);
    ties count half for AUROC and as one threshold for AP, as in scikit-learn."""
    cum_pos = np.cumsum(positives, axis=-1)
    cum_neg = np.cumsum(negatives, axis=-1)
    total_pos = cum_pos[..., -1]
    total_neg = cum_neg[..., -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (negatives * (cum_pos - positives / 2)).sum(axis=-1) / (total_pos * total_neg)
        precision = np.where(cum_pos + cum_neg > 0, cum_pos / np.maximum(cum_pos + cum_neg, 1e-300), 0.0)
        ap = (positives * precision).sum(axis=-1) / total_pos
    return auc, ap


def auc_ap(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    level, n_levels = _levels(score)
    y = np.asarray(y, dtype="float64")
    positives = np.bincount(level, weights=y, minlength=n_levels)
    negatives = np.bincount(level, weights=1 - y, minlength=n_levels)
    auc, ap = _auc_ap_from_level_counts(positives, negatives)
    return float(auc), float(ap)


def bootstrap_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of resample row indices (rows = resamples), reproducible from the seed."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, MAX_CELLS_PER_CHUNK // max(n, 1))
    done = 0
    while done < resamples:
        size = min(per_chunk, resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def bootstrap_auc_ap(
    scores: dict[str, np.ndarray], y: np.ndarray, resamples: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per estimator, arrays of bootstrap AUROC and AUPRC over the same resamples."""
    y = np.asarray(y, dtype="float64")
    levels = {name: _levels(score) for name, score in scores.items()}
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {name: ([], []) for name in scores}
    for idx in bootstrap_indices(len(y), resamples, seed):
        rows = np.arange(idx.shape[0])[:, None]
        y_resampled = y[idx]
        for name, (level, n_levels) in levels.items():
            key = (rows * n_levels + level[idx]).ravel()
            size = idx.shape[0] * n_levels
            positives = np.bincount(key, weights=y_resampled.ravel(), minlength=size).reshape(-1, n_levels)
            negatives = np.bincount(key, weights=1 - y_resampled.ravel(), minlength=size).reshape(
                -1, n_levels
            )
            auc, ap = _auc_ap_from_level_counts(positives, negatives)
            out[name][0].append(auc)
            out[name][1].append(ap)
    return {name: (np.concatenate(a), np.concatenate(p)) for name, (a, p) in out.items()}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def brier(probability: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability) - np.asarray(y)) ** 2))


def _newton_logistic(
    design: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 50
) -> np.ndarray:
    """Unpenalised logistic regression by Newton-Raphson (1-2 parameters, so a closed loop is simplest)."""
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = expit(design @ beta + offset)
        gradient = design.T @ (y - p)
        hessian = (design * (p * (1 - p))[:, None]).T @ design
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return np.full(design.shape[1], np.nan)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def calibration_slope_intercept(probability: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Calibration slope (logistic regression of y on logit p) and calibration-in-the-large (intercept with
    logit p as offset). Perfect: slope 1, intercept 0. Slope < 1 means predictions too extreme."""
    y = np.asarray(y, dtype="float64")
    if y.min() == y.max():
        return float("nan"), float("nan")
    lp = logit(np.clip(np.asarray(probability, dtype="float64"), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP))
    ones = np.ones((len(y), 1))
    slope = _newton_logistic(np.column_stack([ones, lp]), y, np.zeros(len(y)))[1]
    intercept = _newton_logistic(ones, y, lp)[0]
    return float(slope), float(intercept)


def net_benefit(probability: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Decision-curve net benefit of treating everyone with probability >= t, for each threshold t."""
    probability = np.asarray(probability, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(y)
    order = np.argsort(-probability, kind="stable")
    sorted_p = probability[order]
    cum_events = np.concatenate([[0.0], np.cumsum(y[order])])
    treated = np.searchsorted(-sorted_p, -thresholds, side="right")  # rows with p >= t
    true_pos = cum_events[treated]
    false_pos = treated - true_pos
    return true_pos / n - false_pos / n * thresholds / (1 - thresholds)


def treat_all_net_benefit(y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    prevalence = float(np.mean(y))
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)
