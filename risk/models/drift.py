"""Does the data being scored resemble the population the model was trained on?

At export, `training_profile` stores per model feature the training distribution: decile bins for numbers
and booleans (plus a "missing" bin), the share of each category for strings. At scoring, `population_drift`
computes the population stability index (PSI) of the scored rows against it, per feature:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

(shares floored at 0.0001). PSI < 0.1 is the usual "no shift", 0.1-0.25 "moderate", > 0.25 "major shift"
(Siddiqi, Credit Risk Scorecards, 2006). The threshold and the minimum number of rows are in
definitions/model_policy.yaml `drift`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from risk.models.policy import DriftPolicy

PROFILE = "training_profile.json"
MISSING = "(missing)"
FLOOR = 1e-4


def _numbers(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        # a plain numpy column (no missing marker but NaN): the same floats without a per-value object
        # round trip, which took ~2 s for the 57 profiled columns of 150k patients (issue 19)
        return series.to_numpy(dtype="float64")
    return pd.to_numeric(series.astype("object").where(series.notna(), None), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )


def _numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of [missing, (-inf, e0], (e0, e1], ..., (e_last, inf)]."""
    n = len(values)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    known = values[~np.isnan(values)]
    bins = np.searchsorted(np.asarray(edges, dtype="float64"), known, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return [float((n - len(known)) / n), *(float(c / n) for c in counts)]


def _category_shares(series: pd.Series) -> dict[str, float]:
    n = len(series)
    if n == 0:
        return {}
    labels = series.astype("object").where(series.notna(), MISSING).astype(str)
    return {str(k): float(v / n) for k, v in labels.value_counts().sort_index().items()}


def training_profile(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], bins: int = 10, source: str = ""
) -> dict[str, Any]:
    """The training distribution of each model feature (rows of `frame`), stored beside the model."""
    features: dict[str, Any] = {}
    for column in numeric:
        values = _numbers(frame[column])
        known = values[~np.isnan(values)]
        quantiles = np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]) if len(known) else []
        edges = sorted({round(float(q), 6) for q in quantiles})
        features[column] = {"kind": "numeric", "edges": edges, "shares": _numeric_shares(values, edges)}
    for column in categorical:
        features[column] = {"kind": "categorical", "shares": _category_shares(frame[column])}
    return {"version": 1, "rows": int(len(frame)), "bins": bins, "source": source, "features": features}


def psi(expected: list[float], actual: list[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def population_drift(profile: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
    """PSI per profiled feature of `frame` against the training profile (features absent count as missing)."""
    out: dict[str, float] = {}
    n = len(frame)
    for column, spec in profile["features"].items():
        series = frame[column] if column in frame else pd.Series([None] * n, dtype="object")
        if spec["kind"] == "numeric":
            actual = _numeric_shares(_numbers(series), spec["edges"])
            out[column] = round(psi(spec["shares"], actual), 4)
        else:
            expected_map = spec["shares"]
            actual_map = _category_shares(series)
            keys = sorted(set(expected_map) | set(actual_map))
            out[column] = round(
                psi([expected_map.get(k, 0.0) for k in keys], [actual_map.get(k, 0.0) for k in keys]), 4
            )
    return out


def load_profile(model_folder: Path) -> dict[str, Any] | None:
    path = Path(model_folder) / PROFILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class DriftReport:
    """What the nightly job records in run.json `model_drift`."""

    model: str
    rows: int
    threshold: float
    min_rows: int
    psi: dict[str, float] = field(default_factory=dict)
    problem: str | None = None  # why the data cannot be said to resemble the training population
    warnings: list[str] = field(default_factory=list)

    @property
    def worst(self) -> list[tuple[str, float]]:
        return sorted(self.psi.items(), key=lambda item: (-item[1], item[0]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rows": self.rows,
            "psi_threshold": self.threshold,
            "min_rows": self.min_rows,
            "max_psi": max(self.psi.values(), default=None),
            "problem": self.problem,
            "psi": dict(self.worst),
        }


def assess_drift(
    model_version: str, profile: dict[str, Any] | None, frame: pd.DataFrame, policy: DriftPolicy
) -> DriftReport:
    threshold, min_rows = policy.psi_refuse_above, policy.min_rows
    report = DriftReport(model=model_version, rows=int(len(frame)), threshold=threshold, min_rows=min_rows)
    if profile is None:
        report.problem = (
            f"model {model_version} has no training profile ({PROFILE}), so its fit to these "
            "data cannot be checked"
        )
        return report
    if len(frame) == 0:  # nobody to score (e.g. an as-of before anyone was enrolled): nothing at risk
        return report
    report.psi = population_drift(profile, frame)
    if len(frame) < min_rows:
        report.problem = (
            f"only {len(frame):,} patients to score (at least {min_rows:,} are needed to "
            f"compare them with the {profile['rows']:,} training rows of model "
            f"{model_version})"
        )
        return report
    drifted = [(name, value) for name, value in report.worst if value > threshold]
    if drifted:
        shown = ", ".join(f"{name} {value:.2f}" for name, value in drifted[:3])
        more = f" and {len(drifted) - 3} more" if len(drifted) > 3 else ""
        report.problem = (
            f"the data do not resemble the training population of model {model_version}: "
            f"PSI above {threshold} for {shown}{more}"
        )
    return report
