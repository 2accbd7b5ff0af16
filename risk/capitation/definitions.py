"""Typed loader for risk/definitions/capitation.yaml: validated once, read as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from risk import definitions
from risk.errors import DefinitionError

LEVELS = ("county", "township", "village")
SETTINGS = ("outpatient", "emergency", "inpatient")
FACILITY_LEVELS = ("village", "township", "county", "outside_county")
PARTIAL_MONTH_RULES = ("mid_month", "daily")


@dataclass(frozen=True)
class Split:
    """Shares of a surplus (or borne deficit) per level; normalised to sum to 1."""

    county: float
    township: float
    village: float

    def share(self, level: str) -> float:
        return float(getattr(self, level))

    def label(self) -> str:
        raw = [self.county, self.township, self.village]
        return "county:town:village " + ":".join(f"{v * 10:g}" for v in raw)


@dataclass(frozen=True)
class Overspend:
    reasonable_cap_share: float  # overspend up to this share of the budget is "reasonable"
    unit_share: float  # the unit bears this share of reasonable overspend; the fund the rest


@dataclass(frozen=True)
class YearRule:
    year: int
    quota: float  # yuan per person-year (定额)
    signing_supplement: float  # yuan per signed person-year
    surplus_split: Split
    overspend: Overspend


@dataclass(frozen=True)
class WhatIf:
    id: str
    zh: str
    en: str
    tiers: tuple[str, ...]
    admissions_change: float
    assumption: str


@dataclass(frozen=True)
class CapitationDefinitions:
    version: str
    conditions: tuple[str, ...]
    pilot_start: date
    budget_holder: str
    partial_month: str
    reference_day: int
    settings: tuple[str, ...]
    facility_levels: tuple[str, ...]
    drugs: bool
    years: dict[int, YearRule]
    alternative_splits: dict[str, Split]
    assessment: dict[str, float] = field(default_factory=dict)
    what_if: dict[str, WhatIf] = field(default_factory=dict)
    source: str = ""

    def year(self, year: int) -> YearRule:
        if year not in self.years:
            known = ", ".join(str(y) for y in sorted(self.years))
            raise DefinitionError(f"{self.source}: no capitation rule for {year} (years defined: {known})")
        return self.years[year]

    def split(self, year: int, name: str | None = None) -> Split:
        if name is None:
            return self.year(year).surplus_split
        if name not in self.alternative_splits:
            known = ", ".join(sorted(self.alternative_splits))
            raise DefinitionError(f"{self.source}: unknown split '{name}' (alternatives: {known})")
        return self.alternative_splits[name]

    def coefficient(self, unit: str) -> float:
        return float(self.assessment.get(unit, 1.0))


def _fail(source: str, where: str, message: str) -> DefinitionError:
    return DefinitionError(f"{source}: {where}: {message}")


def _number(source: str, where: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, where, f"expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise _fail(source, where, f"must be {bound}, got {value!r}")
    return float(value)


def _mapping(source: str, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(source, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _split(source: str, where: str, value: Any) -> Split:
    raw = _mapping(source, where, value)
    unknown = set(raw) - set(LEVELS)
    if unknown:
        raise _fail(source, where, f"unknown level(s) {sorted(unknown)}; levels are {', '.join(LEVELS)}")
    missing = set(LEVELS) - set(raw)
    if missing:
        raise _fail(source, where, f"missing level(s) {sorted(missing)}")
    parts = {k: _number(source, f"{where}.{k}", raw[k], 0) for k in LEVELS}
    total = sum(parts.values())
    if total <= 0:
        raise _fail(source, where, "shares sum to zero")
    return Split(**{k: v / total for k, v in parts.items()})


def _subset(source: str, where: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(source, where, "expected a non-empty list")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise _fail(source, where, f"unknown value(s) {bad}; allowed: {', '.join(allowed)}")
    return tuple(value)


def parse_capitation(data: dict[str, Any], source: str = "capitation.yaml") -> CapitationDefinitions:
    """Validate the parsed YAML; every mistake is one DefinitionError naming the file and the key."""
    for key in ("version", "conditions", "pilot_start", "budget_holder", "years", "spend"):
        if key not in data:
            raise _fail(source, key, "missing")
    known_conditions = definitions.value_set("conditions")
    conditions = _subset(source, "conditions", data["conditions"], tuple(sorted(known_conditions)))
    try:
        pilot_start = date.fromisoformat(str(data["pilot_start"]))
    except ValueError as exc:
        raise _fail(source, "pilot_start", f"not a YYYY-MM-DD date: {data['pilot_start']!r}") from exc
    if data["budget_holder"] != "township":
        raise _fail(source, "budget_holder", "only 'township' (township health centre) is supported")
    partial = data.get("partial_month", "mid_month")
    if partial not in PARTIAL_MONTH_RULES:
        allowed = ", ".join(PARTIAL_MONTH_RULES)
        raise _fail(source, "partial_month", f"must be one of {allowed}, got {partial!r}")
    reference_day = int(_number(source, "reference_day", data.get("reference_day", 15), 1, 28))
    spend = _mapping(source, "spend", data["spend"])
    settings = _subset(source, "spend.settings", spend.get("settings"), SETTINGS)
    levels = _subset(source, "spend.facility_levels", spend.get("facility_levels"), FACILITY_LEVELS)
    years: dict[int, YearRule] = {}
    for raw_year, block in _mapping(source, "years", data["years"]).items():
        try:
            year = int(raw_year)
        except (TypeError, ValueError) as exc:
            raise _fail(source, f"years.{raw_year}", "a year must be an integer like 2024") from exc
        where = f"years.{year}"
        block = _mapping(source, where, block)
        for key in ("quota", "signing_supplement", "surplus_split", "overspend"):
            if key not in block:
                raise _fail(source, f"{where}.{key}", "missing")
        over = _mapping(source, f"{where}.overspend", block["overspend"])
        years[year] = YearRule(
            year=year,
            quota=_number(source, f"{where}.quota", block["quota"], 0),
            signing_supplement=_number(source, f"{where}.signing_supplement", block["signing_supplement"], 0),
            surplus_split=_split(source, f"{where}.surplus_split", block["surplus_split"]),
            overspend=Overspend(
                reasonable_cap_share=_number(
                    source, f"{where}.overspend.reasonable_cap_share", over.get("reasonable_cap_share"), 0, 1
                ),
                unit_share=_number(source, f"{where}.overspend.unit_share", over.get("unit_share"), 0, 1),
            ),
        )
    if not years:
        raise _fail(source, "years", "no year defined")
    raw_alternatives = _mapping(source, "alternative_splits", data.get("alternative_splits") or {})
    alternatives = {
        str(name): _split(source, f"alternative_splits.{name}", value)
        for name, value in raw_alternatives.items()
    }
    assessment = {
        str(unit): _number(source, f"assessment.{unit}", value, 0, 1)
        for unit, value in _mapping(source, "assessment", data.get("assessment") or {}).items()
    }
    what_if = {}
    for name, block in _mapping(source, "what_if", data.get("what_if") or {}).items():
        where = f"what_if.{name}"
        block = _mapping(source, where, block)
        if not str(block.get("assumption", "")).strip():
            raise _fail(source, f"{where}.assumption", "every what-if states its assumption")
        what_if[str(name)] = WhatIf(
            id=str(name),
            zh=str(block.get("zh", name)),
            en=str(block.get("en", name)),
            tiers=_subset(source, f"{where}.tiers", block.get("tiers"), ("red", "yellow", "green")),
            admissions_change=_number(
                source, f"{where}.admissions_change", block.get("admissions_change"), -1, 10
            ),
            assumption=str(block["assumption"]).strip(),
        )
    return CapitationDefinitions(
        version=str(data["version"]),
        conditions=conditions,
        pilot_start=pilot_start,
        budget_holder="township",
        partial_month=partial,
        reference_day=reference_day,
        settings=settings,
        facility_levels=levels,
        drugs=bool(spend.get("drugs", True)),
        years=years,
        alternative_splits=alternatives,
        assessment=assessment,
        what_if=what_if,
        source=source,
    )


def load_capitation(path: str | Path | None = None) -> CapitationDefinitions:
    """The county's capitation definitions (default: the packaged risk/definitions/capitation.yaml)."""
    path = Path(path) if path else definitions.definition_path("capitation.yaml")
    return parse_capitation(definitions.load_yaml(path), source=str(path))
