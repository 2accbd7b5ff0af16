"""The two model families (regularised logistic regression, gradient boosting), each calibrated.

Missing values are handled inside the pipeline: logistic regression imputes the median and adds a
missing-indicator column per feature (so "no HbA1c on record" carries its own weight); gradient boosting
routes missing values natively. No patient is dropped for a missing value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from risk.models.features import FeatureFrame, FeatureSpec, model_frame

MODEL_KINDS = ("logistic_regression", "gradient_boosting")
MODEL_LABELS = {"logistic_regression": "Logistic regression", "gradient_boosting": "Gradient boosting"}


def logistic_pipeline(spec: FeatureSpec, params: dict[str, Any], seed: int) -> Pipeline:
    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    columns = ColumnTransformer(
        [("numbers", numbers, spec.number_columns), ("categories", categories, list(spec.categorical))],
        sparse_threshold=0,
    )
    model = LogisticRegression(
        C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 500)), random_state=seed
    )
    return Pipeline([("frame", FeatureFrame(spec)), ("columns", columns), ("model", model)])


def gradient_boosting_pipeline(spec: FeatureSpec, params: dict[str, Any], seed: int) -> Pipeline:
    categories = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    columns = ColumnTransformer(
        [("numbers", "passthrough", spec.number_columns), ("categories", categories, list(spec.categorical))],
        sparse_threshold=0,
    )
    n_numbers = len(spec.number_columns)
    categorical_mask = [False] * n_numbers + [True] * len(spec.categorical)
    model = HistGradientBoostingClassifier(
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_iter=int(params.get("max_iter", 200)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        min_samples_leaf=int(params.get("min_samples_leaf", 20)),
        l2_regularization=float(params.get("l2_regularization", 0.0)),
        early_stopping=bool(params.get("early_stopping", True)),
        validation_fraction=float(params.get("validation_fraction", 0.1)),
        categorical_features=categorical_mask if any(categorical_mask) else None,
        random_state=seed,
    )
    return Pipeline([("frame", FeatureFrame(spec)), ("columns", columns), ("model", model)])


def base_pipeline(kind: str, spec: FeatureSpec, params: dict[str, Any], seed: int) -> Pipeline:
    if kind == "logistic_regression":
        return logistic_pipeline(spec, params, seed)
    if kind == "gradient_boosting":
        return gradient_boosting_pipeline(spec, params, seed)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


def reference_values(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """A typical patient: median of each number, most common value of each boolean / category.

    Explanations compare a patient with this reference one feature at a time.
    """
    prepared = model_frame(frame, spec)
    reference: dict[str, Any] = {}
    for column in spec.numeric:
        median = prepared[column].median()
        reference[column] = float(median) if pd.notna(median) else np.nan
    for column in [*spec.boolean, *spec.categorical]:
        counts = prepared[column].value_counts()
        reference[column] = counts.index[0] if len(counts) else np.nan
    return reference


def age_sex_groups(frame: pd.DataFrame) -> np.ndarray | None:
    """Each row's sex and 10-year age band ('M|6' = a man aged 60-69; band -1 = age unknown), the group a
    typical patient is drawn from; None when the frame has no age or no sex."""
    if "age" not in frame.columns or "sex" not in frame.columns:
        return None
    band = (pd.to_numeric(frame["age"], errors="coerce") // 10).fillna(-1).astype(int).astype(str)
    return (frame["sex"].astype(str) + "|" + band).to_numpy()


def group_reference_values(
    frame: pd.DataFrame, spec: FeatureSpec, min_group: int
) -> dict[str, dict[str, Any]]:
    """A typical patient per sex and 10-year age band of `frame` (the training rows): group -> feature ->
    median of a number / most common boolean or category, for the features with at least `min_group` known
    values in that group (the others fall back to the overall reference_values). Plain Python values, so
    the table outlives library versions inside the exported model."""
    groups = age_sex_groups(frame)
    if groups is None:
        return {}
    prepared = model_frame(frame, spec).reset_index(drop=True)
    modal = set(spec.boolean) | set(spec.categorical)
    table: dict[str, dict[str, Any]] = {}
    for column in spec.columns:
        by = prepared[column].groupby(groups)
        counts = by.count()
        enough = counts.index[counts >= min_group]
        if not len(enough):
            continue
        if column in modal:
            typical = by.agg(lambda v: v.mode().iloc[0] if v.notna().any() else np.nan)
        else:
            typical = by.median()
        for group in enough:
            value = typical[group]
            table.setdefault(str(group), {})[column] = value.item() if hasattr(value, "item") else value
    return dict(sorted(table.items()))


def typical_min_group() -> int:
    """Fewest known values for a same-age-sex typical value (definitions/reason_phrases.yaml min_group)."""
    from risk.models.explanations import phrase_book  # the phrase book is the explanations' definition

    return int(phrase_book().get("min_group", 30))


class CalibratedRiskModel(ClassifierMixin, BaseEstimator):
    """A base pipeline fitted on the training rows, then calibrated on a separate calibration slice.

    fit(X, y, calibration_X=..., calibration_y=...) uses the given slice (the training pipeline passes the
    held-out persons of the training snapshots); without one, calibration_share of the rows (grouped by
    person_id when present) is held out at random.
    """

    def __init__(
        self,
        kind: str = "logistic_regression",
        spec: FeatureSpec | None = None,
        params: dict[str, Any] | None = None,
        calibration_method: str = "sigmoid",
        calibration_share: float = 0.25,
        seed: int = 0,
        n_threads: int | None = 1,
    ):
        self.kind = kind
        self.spec = spec
        self.params = params
        self.calibration_method = calibration_method
        self.calibration_share = calibration_share
        self.seed = seed
        self.n_threads = n_threads

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        calibration_X: pd.DataFrame | None = None,
        calibration_y: np.ndarray | pd.Series | None = None,
    ) -> CalibratedRiskModel:
        y = np.asarray(y).astype(int)
        if calibration_X is None:
            fit_mask = calibration_split(X, self.calibration_share, self.seed)
            X, calibration_X = X[fit_mask], X[~fit_mask]
            y, calibration_y = y[fit_mask], y[~fit_mask]
        calibration_y = np.asarray(calibration_y).astype(int)
        if len(np.unique(y)) < 2 or len(np.unique(calibration_y)) < 2:
            raise ValueError("both the fitting rows and the calibration rows need events and non-events")
        with self._threads():
            self.base_ = base_pipeline(self.kind, self.spec, self.params or {}, self.seed).fit(X, y)
            self.calibrator_ = calibrate(self.base_, calibration_X, calibration_y, self.calibration_method)
        self.reference_ = reference_values(X, self.spec)
        # the typical patient of each sex and age band is a property of the model (training rows), so a
        # patient's reasons do not depend on who else is scored with them (issue 15; engine parity)
        self.group_reference_ = group_reference_values(X, self.spec, typical_min_group())
        self.classes_ = np.array([0, 1])
        self.n_fit_rows_, self.n_calibration_rows_ = len(y), len(calibration_y)
        self.prevalence_fit_ = float(y.mean())
        return self

    def _threads(self) -> threadpool_limits:
        # OpenMP threads of gradient boosting busy-wait; on a shared machine more threads can be many times
        # slower (measured 6x with 2 threads on a loaded 2-core host), so the default is one.
        return threadpool_limits(limits=self.n_threads, user_api="openmp")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        with self._threads():
            return self.calibrator_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The uncalibrated base model's log-odds (monotone with the calibrated risk); for explanations."""
        with self._threads():
            return self.base_.decision_function(X)

    @property
    def feature_columns(self) -> list[str]:
        return self.spec.columns


def calibrate(
    fitted: Any, X: pd.DataFrame, y: np.ndarray, method: str = "isotonic"
) -> CalibratedClassifierCV:
    """Calibrate an already fitted classifier on a separate slice (frozen: the model is not refitted)."""
    if method not in ("isotonic", "sigmoid"):
        raise ValueError(f"calibration method must be isotonic or sigmoid, not {method!r}")
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(X, np.asarray(y).astype(int))


def calibration_split(X: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """Boolean mask of rows kept for fitting; the rest calibrate. Whole persons go one way or the other."""
    rng = np.random.default_rng(seed)
    if "person_id" in X.columns:
        persons = pd.Index(X["person_id"].astype(str).unique())
        calibration_persons = persons[rng.random(len(persons)) < share]
        return ~X["person_id"].astype(str).isin(calibration_persons).to_numpy()
    return rng.random(len(X)) >= share
