"""The model policy (definitions/model_policy.yaml) as one typed, frozen value: training, features, tiering,
combining, explanations, evaluation.

Read and validated once (`load_model_policy`); everything downstream reads attributes, never the YAML
mapping. Defaults are stated once, as the field defaults below. Each section declares its value rules in a
`_parameter_constraints` table (scikit-learn's style), checked by one function when the policy is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

from risk import definitions
from risk.errors import DefinitionError

REQUIRED_SECTIONS = ("training", "features", "tiering", "combine", "explanations", "evaluation")


# --- value rules (scikit-learn `_parameter_constraints` style) ---------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A number in [low, high] (`closed` says which ends are included: both, left, right, neither)."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and self.closed in ("right", "neither"))
        ):
            return False
        return not (
            self.high is not None
            and (value > self.high or (value == self.high and self.closed in ("left", "neither")))
        )

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        kind = "an integer" if self.kind is Integral else "a number"
        return (
            f"{kind} in {left}{self.low if self.low is not None else '-inf'}, "
            f"{self.high if self.high is not None else 'inf'}{right}"
        )


@dataclass(frozen=True)
class Options:
    """One of the listed values."""

    values: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class OfType:
    kind: type | tuple[type, ...]
    what: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.kind)

    def __str__(self) -> str:
        return self.what


NONE = Options((None,))


def _validate_constraints(section: Any, where: str) -> None:
    """Every field named in the section's `_parameter_constraints` satisfies at least one of its rules."""
    for name, rules in type(section)._parameter_constraints.items():
        value = getattr(section, name)
        if not any(rule.accepts(value) for rule in rules):
            raise DefinitionError(
                f"{where}.{name} must be " + " or ".join(str(rule) for rule in rules) + f", not {value!r}"
            )


def _build(cls: type, raw: Any, where: str) -> Any:
    """A section dataclass from its YAML mapping: unknown keys refused, absent keys take the field default,
    nested sections built the same way, then the section's constraints checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise DefinitionError(f"{where}: unknown keys {unknown}")
    values = {}
    for name, value in raw.items():
        nested = _SECTION_TYPES.get((cls, name))
        values[name] = _build(nested, value, f"{where}.{name}") if nested else _frozen(value)
    try:
        section = cls(**values)
    except TypeError as exc:
        raise DefinitionError(f"{where}: {exc}") from exc
    _validate_constraints(section, where)
    return section


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The YAML form of a section: mappings and lists, in field order."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.copy(value)


# --- sections ----------------------------------------------------------------------------------------------
_INT = OfType(Integral, "an integer")
_STRINGS = OfType(tuple, "a list of column names")
_MAPPING = OfType(dict, "a mapping of estimator parameters")


@dataclass(frozen=True)
class TrainingPolicy:
    snapshots: int = 4
    every_months: int = 3
    seed: int = 20261125
    threads: int = 1
    calibration_share: float = 0.25
    calibration_method: str = "sigmoid"
    logistic_regression: dict[str, Any] = field(default_factory=dict)
    gradient_boosting: dict[str, Any] = field(default_factory=dict)
    export: str = "best_auprc"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "snapshots": [Interval(Integral, 1, None)],
        "every_months": [Interval(Integral, 1, None)],
        "seed": [_INT],
        "threads": [Interval(Integral, 1, None)],
        "calibration_share": [Interval(Real, 0, 1, "neither")],
        "calibration_method": [Options(("sigmoid", "isotonic"))],
        "logistic_regression": [_MAPPING],
        "gradient_boosting": [_MAPPING],
        "export": [Options(("logistic_regression", "gradient_boosting", "best_auprc"))],
    }

    def estimator_params(self, kind: str) -> dict[str, Any]:
        """The hyperparameters of one model kind (a copy)."""
        return dict(getattr(self, kind))


@dataclass(frozen=True)
class FeaturePolicy:
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "exclude": [_STRINGS],
        "categorical": [_STRINGS],
    }


@dataclass(frozen=True)
class CapacityTiering:
    red_share: float = 0.05
    yellow_share: float = 0.20
    within: str | None = None  # None = county-wide ranking; else a features column (e.g. team_id)

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "red_share": [Interval(Real, 0, 1, "right")],
        "yellow_share": [Interval(Real, 0, 1, "both")],
        "within": [OfType(str, "a column name"), NONE],
    }


@dataclass(frozen=True)
class ProbabilityTiering:
    red_at_least: float = 0.20
    yellow_at_least: float = 0.08

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "red_at_least": [Interval(Real, 0, 1, "right")],
        "yellow_at_least": [Interval(Real, 0, 1, "right")],
    }


@dataclass(frozen=True)
class TieringPolicy:
    method: str = "capacity"
    capacity: CapacityTiering = field(default_factory=CapacityTiering)
    probability: ProbabilityTiering = field(default_factory=ProbabilityTiering)

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "method": [Options(("capacity", "probability"))]
    }


@dataclass(frozen=True)
class CombinePolicy:
    max_raise_levels: int = 2  # 2 = plain maximum of the rule and model tiers

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"max_raise_levels": [Options((0, 1, 2))]}


@dataclass(frozen=True)
class ExplanationPolicy:
    top_n: int = 3

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"top_n": [Interval(Integral, 0, None)]}


@dataclass(frozen=True)
class DecisionThresholds:
    start: float = 0.01
    stop: float = 0.50
    step: float = 0.01

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "start": [Interval(Real, 0, 1)],
        "stop": [Interval(Real, 0, 1)],
        "step": [Interval(Real, 0, 1, "right")],
    }


@dataclass(frozen=True)
class EvaluationPolicy:
    bootstrap_resamples: int = 300
    seed: int = 20261125
    age_bands: tuple[int, ...] = (35, 55, 65, 75)  # lower bounds; the last band is open-ended
    decision_thresholds: DecisionThresholds = field(default_factory=DecisionThresholds)
    calibration_bins: int = 10
    min_subgroup_events: int = 10  # below this a subgroup's AUROC/AUPRC is not reported

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "bootstrap_resamples": [Interval(Integral, 1, None)],
        "seed": [_INT],
        "age_bands": [OfType(tuple, "a list of ages")],
        "calibration_bins": [Interval(Integral, 2, None)],
        "min_subgroup_events": [Interval(Integral, 0, None)],
    }


@dataclass(frozen=True)
class DriftPolicy:
    """Before scoring, each model feature of the patients scored is compared with the model's training
    profile by the population stability index (risk/models/drift.py)."""

    psi_refuse_above: float = 0.25  # "major shift" (Siddiqi 2006)
    bins: int = 10
    min_rows: int = 200  # fewer patients than this: too few to tell

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "psi_refuse_above": [Interval(Real, 0, None, "neither")],
        "bins": [Interval(Integral, 2, None)],
        "min_rows": [Interval(Integral, 1, None)],
    }


@dataclass(frozen=True)
class ModelPolicy:
    """model_policy.yaml, typed. Build with `load_model_policy` / `ModelPolicy.from_dict`; derive a variant
    with `.updated({...})` (validated again)."""

    version: str | None = None
    training: TrainingPolicy = field(default_factory=TrainingPolicy)
    features: FeaturePolicy = field(default_factory=FeaturePolicy)
    tiering: TieringPolicy = field(default_factory=TieringPolicy)
    combine: CombinePolicy = field(default_factory=CombinePolicy)
    explanations: ExplanationPolicy = field(default_factory=ExplanationPolicy)
    evaluation: EvaluationPolicy = field(default_factory=EvaluationPolicy)
    drift: DriftPolicy = field(default_factory=DriftPolicy)  # optional section: these defaults without it

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"version": [OfType(str, "a string"), NONE]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "model_policy.yaml") -> ModelPolicy:
        if not isinstance(raw, dict):
            raise DefinitionError(f"{source}: expected a mapping at the top level")
        missing = [section for section in REQUIRED_SECTIONS if section not in raw]
        if missing:
            raise DefinitionError(f"{source}: missing sections {missing}")
        raw = {**raw, "version": None if raw.get("version") is None else str(raw["version"])}
        policy = _build(cls, raw, source)
        _check_across_fields(policy, source)
        return policy

    def as_dict(self) -> dict[str, Any]:
        """The policy as YAML-shaped mappings (what training records in its parameters and metadata)."""
        return _plain(self)

    def section(self, name: str) -> dict[str, Any]:
        return _plain(getattr(self, name))

    def updated(self, changes: dict[str, Any]) -> ModelPolicy:
        """A copy with `changes` merged in section by section (nested mappings merge), validated again."""
        return ModelPolicy.from_dict(definitions.deep_merge(self.as_dict(), copy.deepcopy(changes)))


_SECTION_TYPES: dict[tuple[type, str], type] = {
    (ModelPolicy, "training"): TrainingPolicy,
    (ModelPolicy, "features"): FeaturePolicy,
    (ModelPolicy, "tiering"): TieringPolicy,
    (ModelPolicy, "combine"): CombinePolicy,
    (ModelPolicy, "explanations"): ExplanationPolicy,
    (ModelPolicy, "evaluation"): EvaluationPolicy,
    (ModelPolicy, "drift"): DriftPolicy,
    (TieringPolicy, "capacity"): CapacityTiering,
    (TieringPolicy, "probability"): ProbabilityTiering,
    (EvaluationPolicy, "decision_thresholds"): DecisionThresholds,
}


def _check_across_fields(policy: ModelPolicy, source: str) -> None:
    tiering = policy.tiering
    capacity, cutoffs = tiering.capacity, tiering.probability
    if tiering.method == "capacity" and capacity.red_share + capacity.yellow_share > 1:
        raise DefinitionError(f"{source}: capacity shares must satisfy 0 < red_share, red + yellow <= 1")
    if tiering.method == "probability" and not cutoffs.yellow_at_least <= cutoffs.red_at_least:
        raise DefinitionError(f"{source}: need 0 < yellow_at_least <= red_at_least <= 1")


def load_model_policy(path: Path | None = None) -> ModelPolicy:
    path = Path(path) if path else definitions.definition_path("model_policy.yaml")
    return ModelPolicy.from_dict(definitions.load_yaml(path), source=path.name)


@lru_cache(maxsize=1)
def default_model_policy() -> ModelPolicy:
    return load_model_policy()
