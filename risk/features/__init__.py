"""As-of feature pipeline: one row per managed person, defined once in SQL (DuckDB now, Spark later)."""

from risk.features.catalogue import FEATURE_SET_VERSION, FeatureDef, feature_catalogue, feature_names
from risk.features.chinapar import chinapar_10y_risk, chinapar_category
from risk.features.pipeline import compute_features, compute_features_table, feature_schema
from risk.features.sql import feature_query

__all__ = [
    "FEATURE_SET_VERSION",
    "FeatureDef",
    "chinapar_10y_risk",
    "chinapar_category",
    "compute_features",
    "compute_features_table",
    "feature_catalogue",
    "feature_names",
    "feature_query",
    "feature_schema",
]
