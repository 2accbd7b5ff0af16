"""Indicator definitions from risk/definitions/indicators.yaml, checked and rendered to SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from risk import definitions
from risk.errors import DefinitionError, RiskUserError
from risk.sql import bind

Kind = Literal["proportion", "share_of_events", "mean_per_person"]
Window = Literal["period", "last_3_months", "rolling_12_months"]
KINDS = ("proportion", "share_of_events", "mean_per_person")
WINDOWS = ("period", "last_3_months", "rolling_12_months")
DEFINITION_LABELS = {
    "chinese_national": "Chinese national basic public health service definition (annual / per period)",
    "who_hearts": "WHO HEARTS / Simple.org monthly definition (latest BP in the last 3 calendar months)",
}
_COHORT_REF = re.compile(r":cohort\((\w+)\)")


@dataclass(frozen=True)
class Target:
    direction: Literal["at_least", "at_most"]
    by_year: dict[int, float]
    source: str
    rule: str = ""

    def for_year(self, year: int) -> float | None:
        """The target of the latest target year on or before `year`; None before the first one."""
        years = [y for y in self.by_year if y <= year]
        return self.by_year[max(years)] if years else None

    def met(self, value: float, year: int) -> bool | None:
        target = self.for_year(year)
        if target is None or value != value:  # NaN: nothing to compare
            return None
        return bool(value >= target) if self.direction == "at_least" else bool(value <= target)


@dataclass(frozen=True)
class Indicator:
    id: str
    zh: str
    en: str
    definition: str
    kind: Kind
    ci: Literal["wilson", "none"]
    window: Window
    denominator: str
    measures: tuple[str, ...]
    numerator: str
    denominator_value: str
    period_rule: str
    source: str
    target: Target | None = None
    reference: dict[str, Any] | None = None
    period_rule_zh: str = ""  # the same rule in Chinese, for the Chinese overview and workbooks
    source_zh: str = ""  # the same source in Chinese

    def rule_text(self, lang: str) -> str:
        """How the indicator is computed, in `lang` ("zh" or "en"); English where no Chinese is given."""
        return self.period_rule_zh if lang == "zh" and self.period_rule_zh else self.period_rule

    def source_text(self, lang: str) -> str:
        """Where the indicator comes from, in `lang`; English where no Chinese is given."""
        return self.source_zh if lang == "zh" and self.source_zh else self.source

    @property
    def is_rate(self) -> bool:
        return self.kind in ("proportion", "share_of_events")

    @property
    def definition_label(self) -> str:
        return DEFINITION_LABELS.get(self.definition, self.definition)


@dataclass(frozen=True)
class IndicatorSet:
    version: str
    min_count: int
    parameters: dict[str, Any]
    views: dict[str, str]
    cohorts: dict[str, dict[str, str]]
    measures: dict[str, dict[str, Any]]
    indicators: dict[str, Indicator]
    tier_indicators: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, indicator_id: str) -> Indicator:
        try:
            return self.indicators[indicator_id]
        except KeyError:
            known = ", ".join(sorted(self.indicators))
            raise RiskUserError(f"unknown indicator '{indicator_id}'; known: {known}") from None

    def render(self, sql: str, extra: dict[str, Any] | None = None) -> str:
        """Substitute :cohort(name) with the cohort's SQL, then bind each :param as a SQL literal
        (risk.sql.bind: strings quoted, lists as quoted lists for `IN (:name)`)."""
        sql = _COHORT_REF.sub(lambda m: self._cohort_sql(m[1]), sql)
        return bind(sql, {**self.parameters, **(extra or {})}, where="indicators.yaml")

    def _cohort_sql(self, name: str) -> str:
        if name not in self.cohorts:
            raise DefinitionError(f"indicators.yaml: unknown cohort '{name}'")
        return self.cohorts[name]["sql"]

    def cohort_sql(self, name: str) -> str:
        return self.render(self._cohort_sql(name))

    def measure_sql(self, name: str) -> str:
        measure = self.measures[name]
        return self.render(measure["sql"], measure.get("parameters"))


def _threshold(path: str) -> Any:
    node: Any = definitions.thresholds()
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DefinitionError(f"indicators.yaml: thresholds.yaml has no '{path}'")
        node = node[part]
    return node


def _parameters(raw: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in raw.items():
        if "from_thresholds" in spec:
            value = _threshold(spec["from_thresholds"])
        elif "value" in spec:
            value = spec["value"]
        else:
            raise DefinitionError(f"indicators.yaml: parameter '{name}' needs `value` or `from_thresholds`")
        if not isinstance(value, bool | int | float | str | list):
            raise DefinitionError(f"indicators.yaml: parameter value {value!r} cannot be used in SQL")
        values[name] = value
    return values


def _target(raw: dict[str, Any] | None, where: str) -> Target | None:
    if not raw:
        return None
    if raw.get("direction") not in ("at_least", "at_most"):
        raise DefinitionError(f"indicators.yaml: {where}: target.direction must be at_least or at_most")
    return Target(
        direction=raw["direction"],
        by_year={int(y): float(v) for y, v in raw["by_year"].items()},
        source=str(raw.get("source", "")),
        rule=str(raw.get("rule", "")),
    )


def _indicator(indicator_id: str, raw: dict[str, Any], cohorts: dict, measures: dict) -> Indicator:
    where = f"indicator '{indicator_id}'"
    missing = [
        k for k in ("zh", "en", "kind", "denominator", "numerator", "period_rule", "source") if k not in raw
    ]
    if missing:
        raise DefinitionError(f"indicators.yaml: {where} lacks {', '.join(missing)}")
    if raw["kind"] not in KINDS:
        raise DefinitionError(f"indicators.yaml: {where}: kind must be one of {', '.join(KINDS)}")
    window = raw.get("window", "period")
    if window not in WINDOWS:
        raise DefinitionError(f"indicators.yaml: {where}: window must be one of {', '.join(WINDOWS)}")
    if raw["denominator"] not in cohorts:
        raise DefinitionError(f"indicators.yaml: {where}: unknown cohort '{raw['denominator']}'")
    unknown = [m for m in raw.get("measures", []) if m not in measures]
    if unknown:
        raise DefinitionError(f"indicators.yaml: {where}: unknown measures {', '.join(unknown)}")
    ci = raw.get("ci", "none")
    if ci == "wilson" and raw["kind"] == "mean_per_person":
        raise DefinitionError(f"indicators.yaml: {where}: a Wilson interval needs a proportion")
    return Indicator(
        id=indicator_id,
        zh=raw["zh"],
        en=raw["en"],
        definition=raw.get("definition", "chinese_national"),
        kind=raw["kind"],
        ci=ci,
        window=window,
        denominator=raw["denominator"],
        measures=tuple(raw.get("measures", [])),
        numerator=str(raw["numerator"]),
        denominator_value=str(raw.get("denominator_value", "1")),
        period_rule=" ".join(str(raw["period_rule"]).split()),
        period_rule_zh=" ".join(str(raw.get("period_rule_zh", "")).split()),
        source_zh=str(raw.get("source_zh", "")),
        source=str(raw["source"]),
        target=_target(raw.get("target"), where),
        reference=raw.get("reference"),
    )


def parse_indicator_set(raw: dict[str, Any]) -> IndicatorSet:
    for section in ("version", "parameters", "cohorts", "measures", "indicators"):
        if section not in raw:
            raise DefinitionError(f"indicators.yaml: missing section '{section}'")
    cohorts = raw["cohorts"]
    measures = raw["measures"]
    indicators = {i: _indicator(i, spec, cohorts, measures) for i, spec in raw["indicators"].items()}
    return IndicatorSet(
        version=str(raw["version"]),
        min_count=int(raw.get("suppression", {}).get("min_count", 10)),
        parameters=_parameters(raw["parameters"]),
        views=dict(raw.get("views", {})),
        cohorts=cohorts,
        measures=measures,
        indicators=indicators,
        tier_indicators=dict(raw.get("tier_indicators", {})),
    )


@lru_cache(maxsize=1)
def indicator_set() -> IndicatorSet:
    """The packaged indicator definitions (risk/definitions/indicators.yaml)."""
    return parse_indicator_set(definitions.indicator_definitions())
