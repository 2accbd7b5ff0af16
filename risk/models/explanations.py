"""Per-patient explanations: which features raise this patient's predicted risk most, in clinician words.

Method (the same for both model families): the contribution of feature j for a patient is the change in the
base model's log-odds when j alone is replaced by the value of a typical patient (training median / most
common value). For logistic regression this is exactly coefficient x (standardised value - standardised
median), i.e. the usual linear contribution; for gradient boosting it is a one-at-a-time attribution that
captures the feature's own effect at this patient's other values (cheap: one extra prediction pass per
feature; no extra dependency such as SHAP). A missing value whose absence raises the risk is reported as
"not recorded".
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from risk.models.estimators import CalibratedRiskModel
from risk.models.features import catalogue, model_frame

MIN_CONTRIBUTION = 0.01  # log-odds; smaller effects are not worth a clinician's attention
PARENTHESIS = re.compile(r"\s*[(（][^)）]*[)）]")
AS_OF_WORDS = re.compile(r" on (or before )?as_of")  # catalogue wording for analysts, not clinicians


def contributions(model: CalibratedRiskModel, X: pd.DataFrame) -> pd.DataFrame:
    """Log-odds contribution of each model feature for each row (rows = X.index, columns = features)."""
    spec = model.spec
    working = model_frame(X, spec)
    baseline = model.raw_score(working)
    result = np.zeros((len(working), len(spec.columns)))
    for j, column in enumerate(spec.columns):
        saved = working[column]
        working[column] = pd.Series(
            [model.reference_[column]] * len(working), index=working.index, dtype=saved.dtype
        )
        result[:, j] = baseline - model.raw_score(working)
        working[column] = saved
    return pd.DataFrame(result, index=X.index, columns=spec.columns)


def _format_value(feature: str, value: Any) -> tuple[str, str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "无记录", "not recorded"
    entry = catalogue().get(feature, {})
    kind, unit = entry.get("type"), entry.get("unit") or ""
    if kind == "bool" or isinstance(value, bool | np.bool_):
        return ("是", "yes") if bool(value) else ("否", "no")
    if isinstance(value, str):
        return value, value
    number = float(value)
    if unit == "share":
        text = f"{number * 100:.0f}%"
        return text, text
    whole = kind == "int" or number.is_integer() or abs(number) >= 100
    text = f"{number:.0f}" if whole else f"{number:.1f}"
    if unit and unit != "years":
        text = f"{text} {unit}"
    elif unit == "years":
        return f"{text} 岁", f"{text} years"
    return text, text


def describe(feature: str, value: Any) -> tuple[str, str]:
    """(zh, en) phrase for a feature value: ('最近一次收缩压：172 mmHg', 'Last systolic BP: 172 mmHg')."""
    entry = catalogue().get(feature, {})
    name_en = PARENTHESIS.sub("", str(entry.get("en", feature)))
    name_en = AS_OF_WORDS.sub("", name_en).strip() or feature
    name_zh = PARENTHESIS.sub("", str(entry.get("zh", name_en))).strip() or name_en
    value_zh, value_en = _format_value(feature, value)
    return f"{name_zh}：{value_zh}", f"{name_en}: {value_en}"


def top_reasons(model: CalibratedRiskModel, X: pd.DataFrame, top_n: int = 3) -> list[list[dict[str, Any]]]:
    """For each row, up to top_n features that raise its risk most: feature, zh, en, log-odds contribution."""
    if len(X) == 0:
        return []
    contrib = contributions(model, X)
    values = model_frame(X, model.spec)
    matrix = contrib.to_numpy()
    order = np.argsort(-matrix, axis=1)[:, :top_n]
    columns = contrib.columns
    reasons: list[list[dict[str, Any]]] = []
    for i in range(len(matrix)):
        row = []
        for j in order[i]:
            weight = matrix[i, j]
            if weight < MIN_CONTRIBUTION:
                break
            feature = columns[j]
            zh, en = describe(feature, values.iat[i, j])
            row.append({"feature": feature, "zh": zh, "en": en, "log_odds": round(float(weight), 3)})
        reasons.append(row)
    return reasons


def reasons_json(reasons: list[list[dict[str, Any]]]) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in reasons]
