"""Training data from several as-of snapshots, built with the feature pipeline, split by time.

The test snapshot is the latest as-of date whose outcome window is complete. Training snapshots are earlier
and are chosen so that their outcome windows END on or before the test as-of (as_of + horizon <= test as_of):
no training feature or label reads anything that happened after the test snapshot's as-of date. Features use
only events on or before their own as_of (the feature pipeline's guarantee), labels only events in
(as_of, as_of + horizon].
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from risk.errors import RiskUserError
from risk.models.labels import build_outcome_labels, data_end_date
from risk.models.outcomes import OutcomeDefinition, outcome_definition
from risk.provenance import file_fingerprint
from risk.run.folder import canonical_dir

log = logging.getLogger(__name__)

FeatureFunction = Callable[[Path, date], pd.DataFrame]
SNAPSHOT_COLUMN = "snapshot"  # "train" or "test"


def months_before(day: date, months: int) -> date:
    """Calendar months earlier, month ends staying month ends (2023-12-31 minus 3 months = 2023-09-30)."""
    stamp = pd.Timestamp(day)
    shifted = stamp - pd.DateOffset(months=months)
    if stamp.is_month_end:
        shifted = shifted + pd.offsets.MonthEnd(0)
    return shifted.date()


def latest_complete_as_of(data_end: date, horizon_days: int) -> date:
    """The latest quarter end whose outcome window ends on or before data_end."""
    last_possible = pd.Timestamp(data_end - timedelta(days=horizon_days))
    quarter_end = last_possible + pd.offsets.QuarterEnd(0)
    if quarter_end > last_possible:
        quarter_end = last_possible - pd.offsets.QuarterEnd(1)
    return quarter_end.date()


@dataclass(frozen=True)
class SnapshotPlan:
    test_as_of: date
    train_as_of: tuple[date, ...]  # oldest first
    horizon_days: int

    def check(self, data_end: date) -> None:
        if self.test_as_of + timedelta(days=self.horizon_days) > data_end:
            raise RiskUserError(
                f"the outcome window of the test snapshot {self.test_as_of} ends after the data ends "
                f"({data_end}); choose --as-of on or before "
                f"{latest_complete_as_of(data_end, self.horizon_days)}"
            )
        for as_of in self.train_as_of:
            if as_of + timedelta(days=self.horizon_days) > self.test_as_of:
                raise RiskUserError(
                    f"training snapshot {as_of}: its outcome window runs past the test snapshot "
                    f"{self.test_as_of}"
                )

    def as_dict(self) -> dict[str, object]:
        return {
            "test_as_of": self.test_as_of.isoformat(),
            "train_as_of": [d.isoformat() for d in self.train_as_of],
            "horizon_days": self.horizon_days,
        }


def plan_snapshots(test_as_of: date, n_train: int, every_months: int, horizon_days: int) -> SnapshotPlan:
    """n_train snapshots every_months apart, the latest one the last whose window ends by test_as_of."""
    if n_train < 1 or every_months < 1:
        raise RiskUserError("need at least one training snapshot and a spacing of at least one month")
    step = 1
    while months_before(test_as_of, step * every_months) + timedelta(days=horizon_days) > test_as_of:
        step += 1
    train = [months_before(test_as_of, (step + k) * every_months) for k in range(n_train)]
    return SnapshotPlan(test_as_of=test_as_of, train_as_of=tuple(sorted(train)), horizon_days=horizon_days)


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # features + label columns + `snapshot` (train / test), one row per person-snapshot
    plan: SnapshotPlan
    data_end: date
    data_fingerprint: str
    outcome_version: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def train(self) -> pd.DataFrame:
        return self.frame[self.frame[SNAPSHOT_COLUMN] == "train"]

    @property
    def test(self) -> pd.DataFrame:
        return self.frame[self.frame[SNAPSHOT_COLUMN] == "test"]


def _default_features(canonical_dir: Path, as_of: date) -> pd.DataFrame:
    from risk.features import compute_features

    return compute_features(canonical_dir, as_of)


def resolve_canonical_dir(folder: Path) -> Path:
    """The canonical tables of a `risk validate` output (or of its canonical/ folder)."""
    return canonical_dir(folder)


def canonical_fingerprint(canonical_dir: Path) -> str:
    return file_fingerprint(sorted(Path(canonical_dir).glob("*.parquet")))


def build_training_set(
    canonical_dir: Path,
    plan: SnapshotPlan,
    feature_fn: FeatureFunction | None = None,
    definition: OutcomeDefinition | None = None,
    data_end: date | None = None,
) -> TrainingSet:
    """Features and labels for every snapshot of the plan, stacked (train snapshots, then the test one)."""
    canonical_dir = resolve_canonical_dir(canonical_dir)
    definition = definition or outcome_definition()
    feature_fn = feature_fn or _default_features
    data_end = data_end or data_end_date(canonical_dir)
    plan.check(data_end)
    timings: dict[str, float] = {}
    frames = []
    for role, as_of in [*(("train", d) for d in plan.train_as_of), ("test", plan.test_as_of)]:
        started = time.perf_counter()
        features = feature_fn(canonical_dir, as_of)
        timings[f"features_{as_of}"] = time.perf_counter() - started
        if features.empty:
            raise RiskUserError(f"no managed persons on {as_of}; the snapshot cannot be used")
        started = time.perf_counter()
        cohort = pd.DataFrame({"person_id": features["person_id"].to_numpy(), "as_of": as_of})
        labels = build_outcome_labels(canonical_dir, cohort, definition, data_end)
        timings[f"labels_{as_of}"] = time.perf_counter() - started
        if not labels["label_complete"].all():
            raise RiskUserError(
                f"snapshot {as_of}: outcome window not complete in the data (ends {data_end})"
            )
        label_columns = labels.drop(columns=["person_id", "as_of", "label_complete"]).reset_index(drop=True)
        frame = pd.concat([features.reset_index(drop=True), label_columns], axis=1)
        frame["as_of"] = as_of
        frame[SNAPSHOT_COLUMN] = role
        frames.append(frame)
        log.info(
            "snapshot %s (%s): %d persons, %d events", as_of, role, len(frame), int(frame["outcome"].sum())
        )
    return TrainingSet(
        frame=pd.concat(frames, ignore_index=True),
        plan=plan,
        data_end=data_end,
        data_fingerprint=canonical_fingerprint(canonical_dir),
        outcome_version=definition.version,
        timings=timings,
    )
