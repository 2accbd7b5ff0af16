"""Which feature columns a model uses, and turning a feature table into the matrix the estimators expect.

Model inputs are chosen from the feature catalogue types (definitions/features.yaml): numbers and booleans as
numbers (booleans 0/1, missing stays missing), configured string columns as categories; identifiers, geography
and dates are excluded (definitions/model_policy.yaml). Columns outside the catalogue (a county's own table in
`risk train --table`) are typed from their pandas dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from risk import definitions

if TYPE_CHECKING:
    from risk.models.policy import ModelPolicy


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, Any]]:
    """Feature name -> {type, unit, en, zh} from the feature layer's catalogue (definitions/features.yaml)."""
    try:
        from risk.features import feature_catalogue

        return {
            f.name: {"type": f.type, "unit": f.unit, "en": f.description_en, "zh": f.description_zh}
            for f in feature_catalogue()
        }
    except ImportError:  # the feature layer is optional for `risk train --table`
        raw = definitions.load_yaml(definitions.definition_path("features.yaml"))["features"]
        return {
            e["name"]: {"type": e["type"], "unit": e.get("unit"), "en": e["en"], "zh": e["zh"]} for e in raw
        }


def feature_set_version() -> str:
    return str(definitions.load_yaml(definitions.definition_path("features.yaml")).get("version", "unknown"))


@dataclass(frozen=True)
class FeatureSpec:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    boolean: tuple[str, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.boolean, *self.categorical]

    @property
    def number_columns(self) -> list[str]:
        return [*self.numeric, *self.boolean]

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "numeric": list(self.numeric),
            "boolean": list(self.boolean),
            "categorical": list(self.categorical),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, list[str]]) -> FeatureSpec:
        return cls(tuple(raw["numeric"]), tuple(raw["categorical"]), tuple(raw.get("boolean", ())))


def select_model_features(
    frame: pd.DataFrame, policy: ModelPolicy, exclude: set[str] | frozenset[str] = frozenset()
) -> FeatureSpec:
    """Model inputs among the columns of `frame`, in frame order."""
    excluded = set(policy.features.exclude) | set(exclude)
    categorical_names = set(policy.features.categorical)
    known = catalogue()
    numeric, boolean, categorical = [], [], []
    for column in frame.columns:
        if column in excluded:
            continue
        kind = known.get(column, {}).get("type")
        dtype = frame[column].dtype
        if column in categorical_names or (
            kind is None
            and (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype))
            and frame[column].nunique(dropna=True) <= 50
        ):
            categorical.append(column)
        elif kind == "bool" or (kind is None and pd.api.types.is_bool_dtype(dtype)):
            boolean.append(column)
        elif kind in ("float", "int") or (kind is None and pd.api.types.is_numeric_dtype(dtype)):
            numeric.append(column)
    return FeatureSpec(tuple(numeric), tuple(categorical), tuple(boolean))


class FeatureFrame(TransformerMixin, BaseEstimator):
    """First pipeline step: pick the model columns and give them plain numpy-friendly types.

    Booleans become 0/1 floats with NaN for unknown; categories become object strings with NaN for unknown,
    so missing values reach the imputer / gradient boosting instead of dropping the patient.
    """

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureFrame:
        missing = [c for c in self.spec.columns if c not in X.columns]
        if missing:
            raise ValueError(f"feature columns missing: {missing}")
        self.feature_names_in_ = np.asarray(self.spec.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return model_frame(X, self.spec)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.spec.columns, dtype=object)


def model_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    out = {
        column: pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in spec.number_columns
    }
    for column in spec.categorical:
        values = frame[column]
        out[column] = values.astype(str).astype(object).where(values.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)
