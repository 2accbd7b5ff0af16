"""Per-patient explanations: which features raise this patient's predicted risk most, in clinician words.

Method (the same for both model families): the contribution of feature j for a patient is the change in the
base model's log-odds when j alone is replaced by the value of a typical patient (training median / most
common value). For logistic regression this is exactly coefficient x (standardised value - standardised
median), i.e. the usual linear contribution; for gradient boosting it is a one-at-a-time attribution that
captures the feature's own effect at this patient's other values (cheap: one extra prediction pass per
feature; no extra dependency such as SHAP).

The typical patient is of the same sex and 10-year age band (issue 15): the median / most common value
among the model's TRAINING patients of that group, stored with the model (the overall training reference
when the group was small, or for a model exported before the table existed), so a reason says what is
unusual for someone like this patient, age and sex themselves are never reasons, and a patient's reasons
do not depend on who else is scored in the same batch or engine. The
words are data (definitions/reason_phrases.yaml, next to the feature catalogue): a reason reads
"last systolic BP 172 mmHg (typical for the same age and sex: 138 mmHg)"; missing data is a reason only
where the phrase book says it is the point ("no blood pressure on record"); a value without a phrase is
no reason, so raw codes never reach a person.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.models.estimators import CalibratedRiskModel, age_sex_groups
from risk.models.features import FeatureFrame, catalogue, model_frame

MIN_CONTRIBUTION = 0.01  # log-odds; smaller effects are not worth a clinician's attention


@dataclass(frozen=True)
class ModelInputs:
    """The rows to score as the model sees them, worked out once for scoring and explaining (issue 19: the
    model frame was built five times and the pipeline's preprocessing run twice per tier stage): the model
    frame, and for a linear base model its preprocessed matrix (None for other models)."""

    frame: pd.DataFrame
    transformed: np.ndarray | None


def model_inputs(model: CalibratedRiskModel, X: pd.DataFrame) -> ModelInputs:
    frame = model_frame(X, model.spec)
    transformed = _preprocess(model, frame) if _linear_parts(model) is not None else None
    return ModelInputs(frame, transformed)


def _linear_parts(model: CalibratedRiskModel) -> tuple[Any, list[str]] | None:
    """(final linear step, the feature owning each preprocessed column) of a linear base model with one
    output, else None (contributions then take one prediction pass per feature)."""
    base = model.base_
    last = base.steps[-1][1]
    if not hasattr(last, "coef_") or np.asarray(last.coef_).shape[0] != 1:
        return None
    try:
        names = list(base[:-1].get_feature_names_out())
    except (AttributeError, ValueError):
        return None
    owner = [_owning_feature(name, model.spec.columns) for name in names]
    if any(o is None for o in owner):
        return None
    return last, owner


def _preprocess(model: CalibratedRiskModel, frame: pd.DataFrame) -> np.ndarray:
    """The base pipeline's preprocessing of a model frame (every step but the last), dense. The first step
    (FeatureFrame) is skipped when it only makes the model frame the caller already has."""
    base = model.base_
    first = base.steps[0][1]
    steps = base[1:-1] if isinstance(first, FeatureFrame) and first.spec == model.spec else base[:-1]
    return _dense(steps.transform(frame))


def calibrated_probability(model: CalibratedRiskModel, X: pd.DataFrame, inputs: ModelInputs) -> np.ndarray:
    """`model.predict_proba(X)[:, 1]`, bit for bit, from the preprocessed matrix when there is one: the
    base model's log-odds are the linear step's decision function of it, and a binary calibrator with one
    calibrated classifier maps them to the probability (what CalibratedClassifierCV.predict_proba does,
    without preprocessing the rows a second time). Other models go through predict_proba."""
    calibrator = getattr(model, "calibrator_", None)
    parts = _linear_parts(model)
    fitted = getattr(calibrator, "calibrated_classifiers_", None)
    if inputs.transformed is None or parts is None or not fitted or len(fitted) != 1:
        return model.predict_proba(X)[:, 1]
    one = fitted[0]
    classes = np.asarray(getattr(one, "classes", []))
    estimator_classes = np.asarray(getattr(one.estimator, "classes_", []))
    calibrators = getattr(one, "calibrators", None)
    if (
        getattr(one, "method", None) not in ("sigmoid", "isotonic")
        or classes.tolist() != [0, 1]
        or estimator_classes.tolist() != [0, 1]
        or not calibrators
        or len(calibrators) != 1
    ):
        return model.predict_proba(X)[:, 1]
    decision = parts[0].decision_function(inputs.transformed)
    return np.asarray(calibrators[0].predict(decision), dtype=float)


def contributions(
    model: CalibratedRiskModel,
    X: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    reference_groups: np.ndarray | None = None,
    inputs: ModelInputs | None = None,
) -> pd.DataFrame:
    """Log-odds contribution of each model feature for each row (rows = X.index, columns = features).

    reference: a typical value per row and feature (typical_reference); None = the model's training
    reference for everyone. reference_groups: per row, a code such that rows with the same code have the
    same reference row (typical_reference's age-sex groups): each distinct reference is transformed once.
    inputs: model_inputs(model, X) when the caller has them already."""
    spec = model.spec
    inputs = inputs if inputs is not None else model_inputs(model, X)
    working = inputs.frame
    if reference is None:
        reference = pd.DataFrame(
            {
                c: pd.Series(
                    [model.reference_[c]] * len(working), index=working.index, dtype=working[c].dtype
                )
                for c in working.columns
            }
        )
    linear = linear_contributions(model, working, reference, reference_groups, inputs.transformed)
    if linear is not None:
        return pd.DataFrame(linear, index=X.index, columns=spec.columns)
    return pd.DataFrame(
        one_at_a_time_contributions(model, working, reference), index=X.index, columns=spec.columns
    )


def linear_contributions(
    model: CalibratedRiskModel,
    working: pd.DataFrame,
    reference: pd.DataFrame,
    reference_groups: np.ndarray | None = None,
    transformed: np.ndarray | None = None,
) -> np.ndarray | None:
    """The same one-at-a-time contributions in one pass for a linear base model: every preprocessing step
    acts column by column, so replacing feature j by its reference value changes only j's transformed
    columns, and the log-odds change is coef x (z - z_ref) summed over them. One transform instead of one
    full pipeline pass per feature (61 passes took ~20 s for 12k patients). `transformed`: the working
    rows preprocessed already (ModelInputs)."""
    parts = _linear_parts(model)
    if parts is None:
        return None
    last, owner = parts
    z = transformed if transformed is not None else _preprocess(model, model_frame(working, model.spec))
    if reference_groups is None:
        z_ref = _preprocess(model, model_frame(reference, model.spec))
    else:  # every step transforms row by row: the distinct reference rows once, then one per row
        _, first, inverse = np.unique(np.asarray(reference_groups), return_index=True, return_inverse=True)
        z_ref = _preprocess(model, model_frame(reference.iloc[first], model.spec))[inverse.ravel()]
    per_output = np.subtract(z, z_ref, out=z_ref)  # (z - z_ref) * coef in z_ref's fresh rows: the same
    per_output *= np.asarray(last.coef_)[0]  # numbers without two more rows x outputs temporaries
    index = {c: i for i, c in enumerate(model.spec.columns)}
    return sum_by_owner(per_output, [index[o] for o in owner], len(model.spec.columns))


def sum_by_owner(per_output: np.ndarray, owners: list[int], n_features: int) -> np.ndarray:
    """Rows x features: each output column added to its owning feature's column. Column by column, in
    order: the same additions as `np.add.at(result.T, owners, per_output.T)`, bit for bit, without its
    per-element dispatch (1.7 s for 150k patients, issue 19)."""
    result = np.zeros((per_output.shape[0], n_features))
    for k, owner in enumerate(owners):
        result[:, owner] += per_output[:, k]
    return result


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)


def _owning_feature(output_name: str, columns: list[str]) -> str | None:
    """Input feature of an output column: 'numbers__missingindicator_x' -> x, 'categories__sex_M' -> sex."""
    name = output_name.split("__", 1)[-1].removeprefix("missingindicator_")
    if name in columns:
        return name
    candidates = [c for c in columns if name.startswith(f"{c}_")]
    return max(candidates, key=len) if candidates else None


def one_at_a_time_contributions(
    model: CalibratedRiskModel, working: pd.DataFrame, reference: pd.DataFrame
) -> np.ndarray:
    """Model-agnostic: one extra prediction pass per feature with that feature set to the reference."""
    spec = model.spec
    working = working.copy()
    baseline = model.raw_score(working)
    result = np.zeros((len(working), len(spec.columns)))
    for j, column in enumerate(spec.columns):
        saved = working[column]
        working[column] = reference[column].to_numpy()
        result[:, j] = baseline - model.raw_score(working)
        working[column] = saved
    return result


UNITS = {"days": ("天", "days"), "years": ("岁", "years"), "yuan": ("元", "yuan")}


@functools.cache
def phrase_book() -> dict[str, Any]:
    """definitions/reason_phrases.yaml: how each model feature reads as a reason."""
    from risk import definitions

    return definitions.load_yaml(definitions.definition_path("reason_phrases.yaml"))


def _entry(feature: str) -> dict[str, Any]:
    return phrase_book()["features"].get(feature) or {"hide": True}


def _number(feature: str, value: float) -> tuple[str, str]:
    """A number with its unit, for people: '172 mmHg', '35%', '3 天' / '3 days'."""
    entry = catalogue().get(feature, {})
    kind, unit = entry.get("type"), entry.get("unit") or ""
    if unit == "share":
        text = f"{value * 100:.0f}%"
        return text, text
    whole = kind == "int" or float(value).is_integer() or abs(value) >= 100
    text = f"{value:.0f}" if whole else f"{value:.1f}"
    if unit in UNITS:
        zh, en = UNITS[unit]
        return f"{text}{zh}", f"{text} {en}"
    if unit:
        return f"{text} {unit}", f"{text} {unit}"
    return text, text


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def describe(feature: str, value: Any, typical: Any = None, grouped: bool = True) -> tuple[str, str] | None:
    """(zh, en) reason for a feature value, compared with a typical patient where it is a number; None when
    the value is no reason a person can act on (hidden feature, unremarkable missing value, a yes/no or
    category value without a phrase). Raw codes never come out of here."""
    entry = _entry(feature)
    if entry.get("hide"):
        return None
    if _missing(value):
        missing = entry.get("missing")
        return (missing["zh"], missing["en"]) if missing else None
    if "values" in entry:
        phrase = entry["values"].get(str(value))
        return (phrase["zh"], phrase["en"]) if phrase else None
    if True in entry or False in entry:
        phrase = entry.get(bool(float(value)))
        return (phrase["zh"], phrase["en"]) if phrase else None
    if "zh" not in entry:
        return None
    number = float(value)
    if "at_least" in entry and number < float(entry["at_least"]):
        return None
    if typical is not None and not _missing(typical) and not _worse(entry, number, float(typical)):
        return None
    value_zh, value_en = _number(feature, number)
    months = f"{number / 30.4:.0f}"
    zh = entry["zh"].format(value=value_zh, months=months)
    en = entry["en"].format(value=value_en, months=months)
    if typical is not None and not _missing(typical) and "{months}" not in entry["zh"]:
        words = phrase_book()["typical"]["group" if grouped else "overall"]
        typical_zh, typical_en = _number(feature, float(typical))
        zh += f"（{words['zh'].format(typical=typical_zh)}）"
        en += f" ({words['en'].format(typical=typical_en)})"
    return zh, en


def typical_reference(model: CalibratedRiskModel, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    reference, grouped, _ = _typical_reference(model, X)
    return reference, grouped


def _typical_reference(
    model: CalibratedRiskModel, X: pd.DataFrame, working: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per row and feature, the value of a typical patient of the same sex and 10-year age band in the
    model's TRAINING population (stored with the model at fit time: median of a number, most common yes/no
    or category), and whether it came from that group; where the training group had fewer than `min_group`
    values, or the model predates the stored table, the model's overall training reference. Row by row:
    a patient's typical value never depends on the other rows scored with them."""
    spec = model.spec
    working = working if working is not None else model_frame(X, spec)  # X's model frame
    table: dict[str, dict[str, Any]] = getattr(model, "group_reference_", None) or {}
    groups = age_sex_groups(X) if table else None
    codes, distinct = pd.factorize(pd.Series(groups if groups is not None else np.full(len(X), "")))
    reference = pd.DataFrame(index=working.index)
    grouped = np.zeros((len(working), len(spec.columns)), dtype=bool)
    for j, column in enumerate(spec.columns):
        overall = model.reference_[column]
        per_group = np.full(len(distinct), overall, dtype=object)
        found = np.zeros(len(distinct), dtype=bool)
        if groups is not None:
            for k, group in enumerate(distinct):
                values = table.get(str(group), {})
                if column in values:
                    per_group[k], found[k] = values[column], True
        grouped[:, j] = found[codes] if len(distinct) else False
        if len(distinct):  # typed once per group, then one per row (the same values as typing every row)
            typed = pd.Series(per_group, dtype=object).astype(working[column].dtype).to_numpy()
            reference[column] = pd.Series(typed[codes], index=working.index, dtype=working[column].dtype)
        else:
            per_row = np.full(len(working), overall, dtype=object)
            reference[column] = pd.Series(per_row, index=working.index).astype(working[column].dtype)
    return reference, grouped, codes


def _ranked(
    model: CalibratedRiskModel, X: pd.DataFrame, top_n: int, inputs: ModelInputs | None = None
) -> tuple[Any, ...]:
    """What both forms of top_reasons share: the columns, each row's top_n feature indices by sayable
    contribution, their weights, which of them are kept (above MIN_CONTRIBUTION, in order), the model
    frame's values and typical values (objects) and whether each typical value came from the age-sex group."""
    inputs = inputs if inputs is not None else model_inputs(model, X)
    frame = inputs.frame
    reference, grouped, groups = _typical_reference(model, X, frame)
    contrib = contributions(model, X, reference, groups, inputs)
    columns = list(contrib.columns)
    values, typical = ObjectColumns(frame), ObjectColumns(reference)
    matrix = contrib.to_numpy().copy()
    for j, column in enumerate(columns):
        value_floats, typical_floats = _floats(frame[column]), _floats(reference[column])
        if value_floats is not None and typical_floats is not None and "zh" in _entry(column):
            # a number read as floats: its objects are not needed unless it becomes a reason
            sayable = _sayable(column, value_floats, typical_floats, value_floats, typical_floats)
        else:
            sayable = _sayable(column, values[:, j], typical[:, j], value_floats, typical_floats)
        matrix[:, j] = np.where(sayable, matrix[:, j], 0.0)
    order = _top_columns(matrix, top_n)
    weights = np.take_along_axis(matrix, order, axis=1)
    # Contributions are sorted, so a row's reasons stop at its first weight below the threshold.
    kept = np.cumprod(weights >= MIN_CONTRIBUTION, axis=1).astype(bool)
    return columns, order, weights, kept, values, typical, grouped


def _top_columns(matrix: np.ndarray, top_n: int) -> np.ndarray:
    """`np.argsort(-matrix, axis=1, kind="stable")[:, :top_n]`: each row's top_n columns, largest first,
    ties in column order, by top_n argmax passes (argmax takes the first of equal values; a taken column
    becomes -inf, below every finite value) instead of sorting every row's columns. A matrix with a NaN
    or an infinity (which argmax and the marks would order differently) goes through the sort."""
    top_n = min(top_n, matrix.shape[1])
    if top_n == 0 or not np.isfinite(matrix).all():
        return np.argsort(-matrix, axis=1, kind="stable")[:, :top_n]
    left = matrix.copy()
    order = np.empty((matrix.shape[0], top_n), dtype=np.intp)
    rows = np.arange(matrix.shape[0])
    for rank in range(top_n):
        order[:, rank] = np.argmax(left, axis=1)
        left[rows, order[:, rank]] = -np.inf
    return order


class ObjectColumns:
    """`frame.astype(object).to_numpy()`, read as [rows, j]: column j becomes Python objects when it is
    first read. Making every cell an object took ~1 s at 150k patients; only the reasons' cells are read."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._columns: dict[int, np.ndarray] = {}

    def __getitem__(self, key: tuple[Any, Any]) -> Any:
        rows, j = key
        j = int(j)
        if j not in self._columns:
            self._columns[j] = self._frame.iloc[:, j].astype(object).to_numpy()
        return self._columns[j][rows]

    def take(self, rows: np.ndarray, j: Any) -> np.ndarray:
        """self[rows, j] for an array of rows, converting only those rows of a column not read yet."""
        j = int(j)
        if j in self._columns:
            return self._columns[j][rows]
        return self._frame.iloc[rows, j].astype(object).to_numpy()


def top_reasons(model: CalibratedRiskModel, X: pd.DataFrame, top_n: int = 3) -> list[list[dict[str, Any]]]:
    """For each row, up to top_n features that raise its risk most against a typical patient of the same
    age and sex, in plain words: feature, zh, en, log-odds contribution. A feature whose value is no reason
    (describe() -> None) is skipped, so missing data is a reason only where that is the point."""
    if len(X) == 0:
        return []
    columns, order, weights, kept, values, typical, grouped = _ranked(model, X, top_n)
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(order))]
    cache: dict[tuple, tuple[str, str] | None] = {}
    for i, k in zip(*np.nonzero(kept), strict=True):
        j = int(order[i, k])
        column = columns[j]
        key = (column, _key(values[i, j]), _key(typical[i, j]), bool(grouped[i, j]))
        if key not in cache:
            cache[key] = describe(column, values[i, j], typical[i, j], bool(grouped[i, j]))
        zh, en = cache[key]
        out[i].append({"feature": column, "zh": zh, "en": en, "log_odds": round(float(weights[i, k]), 3)})
    return out


def top_reasons_json(
    model: CalibratedRiskModel, X: pd.DataFrame, top_n: int = 3, inputs: ModelInputs | None = None
) -> list[str]:
    """`reasons_json(top_reasons(model, X, top_n))`, character for character, without a dict and a
    json.dumps per row (the per-row Python that dominated the tier stage at 1M persons, issue 19).
    inputs: model_inputs(model, X) when the caller has them already."""
    return top_reasons_text(model, X, top_n, inputs).tolist()


def top_reasons_text(
    model: CalibratedRiskModel, X: pd.DataFrame, top_n: int = 3, inputs: ModelInputs | None = None
) -> pd.api.extensions.ExtensionArray:
    """top_reasons_json as pandas' `str` array (Arrow), what a DataFrame makes of that list, written
    straight as UTF-8 (the tier stage's column: no Python string per row to encode again, issue 19).

    The phrase of each distinct (feature, value, typical value, grouped) is worked out once per feature
    with pandas' factorize; each reason's JSON text is that phrase's cached prefix plus its log-odds."""
    if len(X) == 0:
        return pd.array([], dtype="str")
    columns, order, weights, kept, values, typical, grouped = _ranked(model, X, top_n, inputs)
    rows, ranks = np.nonzero(kept)  # row-major: each row's reasons in rank order
    features = order[rows, ranks]
    prefixes = np.empty(len(rows), dtype=object)
    for j in np.unique(features):
        at = np.flatnonzero(features == j)
        i = rows[at]
        row_values, row_typical, row_grouped = values.take(i, j), typical.take(i, j), grouped[i, j]
        value_codes, _ = pd.factorize(pd.Series(row_values, dtype=object), use_na_sentinel=False)
        typical_codes, typical_uniques = pd.factorize(
            pd.Series(row_typical, dtype=object), use_na_sentinel=False
        )
        group = row_grouped.astype(np.int64)
        combined = (value_codes.astype(np.int64) * len(typical_uniques) + typical_codes) * 2 + group
        distinct, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        column = columns[int(j)]
        start = f'{{"feature": {_json_text(column)}, "zh": '
        texts = np.empty(len(distinct), dtype=object)
        for d, e in enumerate(first):
            zh, en = describe(column, row_values[e], row_typical[e], bool(row_grouped[e]))
            texts[d] = f'{start}{_json_text(zh)}, "en": {_json_text(en)}, "log_odds": '.encode()
        prefixes[at] = texts[inverse.ravel()]
    # each distinct log-odds is written once (sorted, so equal weights share a text)
    distinct_weights, weight_index = np.unique(weights[rows, ranks], return_inverse=True)
    numbers = np.empty(len(distinct_weights), dtype=object)
    numbers[:] = [(_json_float(round(float(w), 3)) + "}").encode() for w in distinct_weights]
    return _json_rows(rows, ranks, prefixes, numbers[weight_index.ravel()], len(order))


def _json_rows(
    rows: np.ndarray, ranks: np.ndarray, prefixes: np.ndarray, numbers: np.ndarray, n_rows: int
) -> pd.api.extensions.ExtensionArray:
    """Each row's JSON list, '[' + its reasons (prefix + number, UTF-8) joined by ', ' + ']', '[]' without
    one, as one Arrow string array: the pieces are laid out in order and joined once, and each row's end
    is the running sum of its pieces' lengths, so no Python loop runs per reason or per row."""
    counts = np.bincount(rows, minlength=n_rows)
    slots = 3 * counts + 1  # per reason: separator, prefix, number; then the row's end
    ends = np.cumsum(slots) - 1
    pieces = np.empty(int(slots.sum()), dtype=object)
    pieces[ends] = np.where(counts > 0, b"]", b"[]").astype(object)
    at = (ends - slots + 1)[rows] + 3 * ranks
    pieces[at] = np.where(ranks == 0, b"[", b", ").astype(object)
    pieces[at + 1] = prefixes
    pieces[at + 2] = numbers
    sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.add.reduceat(sizes, ends - slots + 1), out=offsets[1:])  # every row has its end slot
    text = pa.LargeStringArray.from_buffers(
        n_rows, pa.py_buffer(offsets), pa.py_buffer(b"".join(pieces.tolist()))
    )
    return pd.array(text, dtype="str")


def _json_text(text: str) -> str:
    """`json.dumps(text, ensure_ascii=False)` for a str: its string encoder without an encoder per call."""
    return encode_basestring(text)


def _json_float(value: float) -> str:
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)


def _worse(entry: dict[str, Any], value: Any, typical: Any) -> Any:
    """value on the worse side of typical (arrays or numbers); True when the entry names no direction."""
    direction = entry.get("worse")
    if direction == "higher":
        return value > typical
    if direction == "lower":
        return value < typical
    return np.ones_like(value, dtype=bool) if isinstance(value, np.ndarray) else True


def _key(value: Any) -> Any:
    return None if _missing(value) else value


def _floats(series: pd.Series) -> np.ndarray | None:
    """A float64 model-frame column as it is (the numbers _sayable would parse back from objects)."""
    return series.to_numpy() if series.dtype == np.float64 else None


def _as_numbers(values: np.ndarray, floats: np.ndarray | None) -> np.ndarray:
    if floats is not None:
        return floats
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def _sayable(
    column: str,
    values: np.ndarray,
    typical: np.ndarray,
    value_floats: np.ndarray | None = None,
    typical_floats: np.ndarray | None = None,
) -> np.ndarray:
    """Whether each value of a feature can be a reason (describe() would not return None). The *_floats
    are the same values when the column is float64 already (parsing 150k objects per column took ~2 s)."""
    entry = _entry(column)
    if entry.get("hide"):
        return np.zeros(len(values), dtype=bool)
    if "zh" in entry:  # a number: every known value (from at_least), a missing one only with its phrase
        numbers = _as_numbers(values, value_floats)
        known = ~np.isnan(numbers)
        if "at_least" in entry:
            known &= numbers >= float(entry["at_least"])
        reference = _as_numbers(typical, typical_floats)
        with np.errstate(invalid="ignore"):
            known &= np.isnan(reference) | _worse(entry, numbers, reference)
        return known | (np.isnan(numbers) & bool(entry.get("missing")))
    codes, distinct = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    allowed = np.array([describe(column, v) is not None for v in distinct], dtype=bool)
    return allowed[codes] if len(distinct) else np.zeros(len(values), dtype=bool)


def reasons_json(reasons: list[list[dict[str, Any]]]) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in reasons]
