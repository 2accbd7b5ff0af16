"""Load and validate a rule-set file (YAML): the county-editable definition of the rule baseline.

A rule set names thresholds once (`thresholds:`), optional helper expressions (`derived:`), the rules
(each an SQL boolean condition over feature columns with an id, tier, zh/en reason and source), a
default rule given when nothing fires, and the follow-up interval of every tier. Everything that is
wrong with a file is reported as a DefinitionError naming the file, the rule (or section) and the
problem, so the CLI can show it on one line.

Null handling: a condition is evaluated with SQL three-valued logic and an unknown (NULL) result counts
as "does not fire" (the engine wraps every condition in `coalesce(..., false)`). A rule that should fire
on missing data must say so explicitly, e.g. `bp_last_date IS NULL OR bp_days_since_last > 180`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from risk import definitions
from risk.errors import DefinitionError
from risk.provenance import text_fingerprint
from risk.schema import TIER_RANK, TIERS
from risk.tiers.rule_columns import arrow_type, feature_column_types

DEFAULT_RULE_SET = "rules/default.yaml"
SQL_DIALECT = "duckdb"

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TOP_LEVEL_KEYS = {"name", "version", "description", "sources", "tiers", "thresholds", "derived", "rules",
                   "default"}
_RULE_KEYS = {"id", "tier", "group", "when", "reason", "source", "weight", "why", "urgency", "due_days",
              "supersedes"}
_DEFAULT_RULE_KEYS = _RULE_KEYS - {"when", "weight", "urgency", "due_days", "supersedes"}
URGENCIES: tuple[str, ...] = ("review", "refer", "emergency")
"""Urgency of a rule in increasing order: it sets the due date and the list order, never the colour."""
_FORBIDDEN_NODES = (exp.Query, exp.Subquery, exp.Table, exp.Command, exp.DDL, exp.DML, exp.Star,
                    exp.Placeholder)


@dataclass(frozen=True)
class Rule:
    id: str
    tier: str
    condition: str  # as written in the file, with {threshold} placeholders
    sql: str  # thresholds substituted, DuckDB dialect
    reason_zh: str
    reason_en: str
    source: str  # key into RuleSet.sources
    group: str = ""
    weight: float = 1.0
    why: str = ""
    urgency: str = ""  # "" (none), review, refer or emergency
    due_days: int | None = None  # see within this many days of the last follow-up (emergency: now)
    supersedes: tuple[str, ...] = ()  # rules this one makes redundant in the reasons (nested levels)

    @property
    def rank(self) -> int:
        return TIER_RANK[self.tier]

    @property
    def urgency_rank(self) -> int:
        return URGENCIES.index(self.urgency) + 1 if self.urgency else 0


@dataclass(frozen=True)
class DerivedColumn:
    name: str
    expression: str
    sql: str
    description: str = ""


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    unit: str = ""
    why: str = ""
    plausible: tuple[float, float] | None = None  # declared range; a value outside it is refused


@dataclass(frozen=True)
class TierSpec:
    tier: str
    interval_days: int
    label_zh: str = ""
    label_en: str = ""


@dataclass(frozen=True)
class RuleSet:
    path: str
    name: str
    version: str
    fingerprint: str  # hash of the file text: two files with the same version but other content differ
    description: str
    sources: dict[str, str]
    tiers: dict[str, TierSpec]
    thresholds: dict[str, Threshold]
    derived: tuple[DerivedColumn, ...]
    rules: tuple[Rule, ...]
    default_rule: Rule
    input_columns: tuple[str, ...]  # feature columns the expressions read, in feature-contract order
    column_types: dict[str, str]  # DuckDB type each input column is evaluated as
    content_fingerprint: str = ""  # hash of the parsed content (comments and layout do not count)

    @property
    def intervals(self) -> dict[str, int]:
        return {tier: spec.interval_days for tier, spec in self.tiers.items()}

    def rule(self, rule_id: str) -> Rule:
        for rule in (*self.rules, self.default_rule):
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def to_dialect(self, dialect: str) -> dict[str, str]:
        """Derived expressions and rule conditions rendered for another SQL engine (e.g. 'spark')."""
        out = {}
        for name, text in [(d.name, d.sql) for d in self.derived] + [(r.id, r.sql) for r in self.rules]:
            out[name] = sqlglot.transpile(text, read=SQL_DIALECT, write=dialect,
                                          unsupported_level=sqlglot.ErrorLevel.RAISE)[0]
        return out


def default_rule_set_path() -> Path:
    return definitions.definition_path(DEFAULT_RULE_SET)


def load_rule_set(rules: str | Path | None = None) -> RuleSet:
    """Read and validate a rule-set file; None means the packaged default rule set."""
    path = Path(rules) if rules is not None else default_rule_set_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DefinitionError(f"{path}: rule-set file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"{path}: cannot read rule-set file ({exc})") from exc
    return _parse_rule_set(str(path), text)


@lru_cache(maxsize=16)
def _parse_rule_set(path: str, text: str) -> RuleSet:
    raw = definitions.load_yaml(path)  # the one YAML loader; raises DefinitionError naming the file
    return _RuleSetParser(path, raw, text).parse()


class _RuleSetParser:
    def __init__(self, path: str, raw: dict[str, Any], text: str):
        self.path = path
        self.raw = raw
        self.text = text
        self.used_columns: set[str] = set()
        self.types = feature_column_types()

    def fail(self, where: str, problem: str) -> DefinitionError:
        return DefinitionError(f"{self.path}: {where}: {problem}")

    def parse(self) -> RuleSet:
        raw = self.raw
        unknown = sorted(set(raw) - _TOP_LEVEL_KEYS)
        if unknown:
            raise self.fail("top level", f"unknown section(s) {', '.join(unknown)}; allowed: "
                                         f"{', '.join(sorted(_TOP_LEVEL_KEYS))}")
        for key in ("version", "sources", "tiers", "thresholds", "rules", "default"):
            if key not in raw or raw[key] in (None, "", [], {}):
                raise self.fail("top level", f"missing or empty '{key}'")
        sources = self._sources(raw["sources"])
        tiers = self._tiers(raw["tiers"])
        thresholds = self._thresholds(raw["thresholds"])
        derived = self._derived(raw.get("derived") or {}, thresholds)
        derived_names = [d.name for d in derived]
        rules = self._rules(raw["rules"], sources, thresholds, derived_names)
        default_rule = self._default_rule(raw["default"], sources, {r.id for r in rules})
        self._type_check(derived, rules)
        content = text_fingerprint(json.dumps(raw, sort_keys=True, default=str))
        self._check_identity(str(raw.get("name", Path(self.path).stem)), str(raw["version"]), content)
        return RuleSet(
            path=self.path, name=str(raw.get("name", Path(self.path).stem)), version=str(raw["version"]),
            fingerprint=text_fingerprint(self.text), description=str(raw.get("description", "")).strip(),
            sources=sources, tiers=tiers, thresholds=thresholds, derived=tuple(derived), rules=tuple(rules),
            default_rule=default_rule,
            input_columns=tuple(c for c in self.types if c in self.used_columns),
            column_types={c: self.types[c] for c in self.types if c in self.used_columns},
            content_fingerprint=content,
        )

    def _check_identity(self, name: str, version: str, content: str) -> None:
        """An edited copy that keeps the packaged rule set's name and version would be recorded on every
        tier as that rule set: refused, so two different rule sets never share a label."""
        packaged = default_rule_set_path()
        if Path(self.path).resolve() == packaged.resolve():
            return
        default = load_rule_set(packaged)
        if (name, version) == (default.name, default.version) and content != default.content_fingerprint:
            raise self.fail("name/version", f"'{name}' version {version} is the packaged rule set's, but the "
                                            "content differs; give your copy its own name and version")

    def _sources(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise self.fail("sources", "expected a mapping of source id -> citation")
        for key, citation in raw.items():
            if not isinstance(citation, str) or not citation.strip():
                raise self.fail(f"source '{key}'", "citation text is missing")
        return {str(k): v.strip() for k, v in raw.items()}

    def _tiers(self, raw: Any) -> dict[str, TierSpec]:
        if not isinstance(raw, dict):
            raise self.fail("tiers", "expected a mapping tier -> {interval_days: N}")
        unknown = sorted(set(map(str, raw)) - set(TIERS))
        if unknown:
            raise self.fail("tiers", f"unknown tier(s) {', '.join(unknown)}; tiers are {', '.join(TIERS)}")
        specs = {}
        for tier in TIERS:
            spec = raw.get(tier)
            if not isinstance(spec, dict) or "interval_days" not in spec:
                raise self.fail(f"tier '{tier}'", "follow-up interval 'interval_days' is missing")
            days = spec["interval_days"]
            if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
                raise self.fail(f"tier '{tier}'", f"interval_days must be a positive whole number of days, "
                                                  f"got {days!r}")
            specs[tier] = TierSpec(tier, days, str(spec.get("zh", "")), str(spec.get("en", "")))
        return specs

    def _thresholds(self, raw: Any) -> dict[str, Threshold]:
        if not isinstance(raw, dict):
            raise self.fail("thresholds", "expected a mapping name -> number")
        out = {}
        for name, spec in raw.items():
            name = str(name)
            if not _IDENTIFIER.match(name):
                raise self.fail(f"threshold '{name}'", "name must be lower_snake_case")
            value, unit, why = (spec.get("value"), spec.get("unit", ""), spec.get("why", "")) \
                if isinstance(spec, dict) else (spec, "", "")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"threshold '{name}'", f"value must be a number, got {value!r}")
            plausible = self._plausible(name, spec.get("plausible") if isinstance(spec, dict) else None)
            low, high = plausible
            if not low <= value <= high:
                raise self.fail(f"threshold '{name}'",
                                f"value {value!r} {unit} is outside its plausible range [{low!r}, {high!r}] "
                                "(a typo? widen 'plausible' only on purpose)")
            out[name] = Threshold(name, value, str(unit), str(why).strip(), plausible)
        return out

    def _plausible(self, name: str, raw: Any) -> tuple[float, float]:
        def number(x: Any) -> bool:
            return isinstance(x, int | float) and not isinstance(x, bool)

        if not (isinstance(raw, list) and len(raw) == 2 and all(number(x) for x in raw) and raw[0] < raw[1]):
            raise self.fail(f"threshold '{name}'", "declare its plausible range as 'plausible: [low, high]' "
                                                   f"(low < high), got {raw!r}")
        return float(raw[0]), float(raw[1])

    def _substitute(self, where: str, text: Any, thresholds: dict[str, Threshold]) -> str:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(where, "expression is missing")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name not in thresholds:
                hint = difflib.get_close_matches(name, thresholds, n=1)
                raise self.fail(where, f"unknown threshold '{{{name}}}'"
                                       + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            return repr(thresholds[name].value)

        sql = _PLACEHOLDER.sub(replace, text)
        if "{" in sql or "}" in sql:
            raise self.fail(where, "unbalanced '{' or '}' in expression")
        return " ".join(sql.split())

    def _parse_sql(self, where: str, sql: str, known: list[str]) -> None:
        try:
            tree = sqlglot.parse_one(sql, read=SQL_DIALECT)
        except sqlglot.errors.SqlglotError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise self.fail(where, f"cannot parse expression '{sql}' ({first_line})") from None
        if tree is None or not isinstance(tree, exp.Condition) or tree.find(*_FORBIDDEN_NODES):
            raise self.fail(where, f"'{sql}' is not a single expression over feature columns "
                                   f"(no statements, sub-queries, tables or '*')")
        for column in tree.find_all(exp.Column):
            if column.table:
                raise self.fail(where, f"column '{column.sql()}' must not be qualified with a table name")
            if column.name not in known:
                hint = difflib.get_close_matches(column.name, known, n=1)
                raise self.fail(where, f"unknown column '{column.name}'"
                                       + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            self.used_columns.add(column.name)

    def _derived(self, raw: Any, thresholds: dict[str, Threshold]) -> list[DerivedColumn]:
        if not isinstance(raw, dict):
            raise self.fail("derived", "expected a mapping name -> {expression, description}")
        known = list(self.types)
        out = []
        for name, spec in raw.items():
            name = str(name)
            where = f"derived '{name}'"
            if not _IDENTIFIER.match(name):
                raise self.fail(where, "name must be lower_snake_case")
            if name in known:
                raise self.fail(where, "name clashes with a feature column or an earlier derived column")
            if name in thresholds:
                raise self.fail(where, "name clashes with a threshold")
            expression, description = (spec.get("expression"), spec.get("description", "")) \
                if isinstance(spec, dict) else (spec, "")
            sql = self._substitute(where, expression, thresholds)
            self._parse_sql(where, sql, known)
            out.append(DerivedColumn(name, " ".join(str(expression).split()), sql, str(description).strip()))
            known.append(name)  # later derived columns and rules may use it
        return out

    def _rule_common(self, where: str, raw: dict[str, Any], sources: dict[str, str], allowed: set[str]
                     ) -> tuple[str, str, str, str]:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise self.fail(where, f"unknown field(s) {', '.join(unknown)}; "
                                   f"allowed: {', '.join(sorted(allowed))}")
        tier = raw.get("tier")
        if tier not in TIER_RANK:
            raise self.fail(where, f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        reason = raw.get("reason")
        if not isinstance(reason, dict):
            raise self.fail(where, "reason is missing (needs zh and en)")
        for language in ("zh", "en"):
            if not isinstance(reason.get(language), str) or not reason[language].strip():
                raise self.fail(where, f"reason.{language} is missing")
        source = raw.get("source")
        if not isinstance(source, str) or not source.strip():
            raise self.fail(where, "source is missing")
        if source not in sources:
            raise self.fail(where, f"source '{source}' is not listed under 'sources'")
        return tier, reason["zh"].strip(), reason["en"].strip(), source

    def _rule_id(self, position: str, raw: Any, seen: set[str]) -> str:
        if not isinstance(raw, dict):
            raise self.fail(position, "expected a mapping with id, tier, when, reason, source")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _IDENTIFIER.match(rule_id):
            raise self.fail(position, f"id must be lower_snake_case text, got {rule_id!r}")
        if rule_id in seen:
            raise self.fail(f"rule '{rule_id}'", "duplicate rule id")
        return rule_id

    def _rules(self, raw: Any, sources: dict[str, str], thresholds: dict[str, Threshold],
               derived_names: list[str]) -> list[Rule]:
        if not isinstance(raw, list):
            raise self.fail("rules", "expected a list of rules")
        known = list(self.types) + derived_names
        seen: set[str] = set()
        rules = []
        for position, spec in enumerate(raw, start=1):
            rule_id = self._rule_id(f"rules item {position}", spec, seen)
            seen.add(rule_id)
            where = f"rule '{rule_id}'"
            tier, zh, en, source = self._rule_common(where, spec, sources, _RULE_KEYS)
            sql = self._substitute(where, spec.get("when"), thresholds)
            self._parse_sql(where, sql, known)
            weight = spec.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise self.fail(where, f"weight must be a positive number, got {weight!r}")
            urgency, due_days = self._urgency(where, spec)
            supersedes = spec.get("supersedes", [])
            if not isinstance(supersedes, list) or not all(isinstance(x, str) for x in supersedes):
                raise self.fail(where, "supersedes must be a list of rule ids")
            rules.append(Rule(rule_id, tier, " ".join(str(spec["when"]).split()), sql, zh, en, source,
                              str(spec.get("group", "")), float(weight), str(spec.get("why", "")).strip(),
                              urgency, due_days, tuple(supersedes)))
        ids = {rule.id for rule in rules}
        for rule in rules:
            unknown = [x for x in rule.supersedes if x not in ids]
            if unknown:
                raise self.fail(f"rule '{rule.id}'", f"supersedes unknown rule(s) {', '.join(unknown)}")
        return rules

    def _urgency(self, where: str, spec: dict[str, Any]) -> tuple[str, int | None]:
        urgency = spec.get("urgency", "") or ""
        if urgency and urgency not in URGENCIES:
            raise self.fail(where, f"urgency must be one of {', '.join(URGENCIES)}, got {urgency!r}")
        due_days = spec.get("due_days")
        if urgency == "emergency":
            if due_days not in (None, 0):
                raise self.fail(where, "an emergency is due now: leave due_days out (or 0)")
            return urgency, 0
        if urgency and (isinstance(due_days, bool) or not isinstance(due_days, int) or due_days < 0):
            raise self.fail(where, f"urgency '{urgency}' needs due_days, a whole number of days >= 0")
        if not urgency and due_days is not None:
            raise self.fail(where, "due_days needs an urgency (review, refer or emergency)")
        return urgency, due_days

    def _default_rule(self, raw: Any, sources: dict[str, str], rule_ids: set[str]) -> Rule:
        rule_id = self._rule_id("default", raw, rule_ids)
        where = f"default rule '{rule_id}'"
        tier, zh, en, source = self._rule_common(where, raw, sources, _DEFAULT_RULE_KEYS)
        return Rule(rule_id, tier, "no other rule fires", "TRUE", zh, en, source, str(raw.get("group", "")),
                    1.0, str(raw.get("why", "")).strip())

    def _type_check(self, derived: list[DerivedColumn], rules: list[Rule]) -> None:
        """Bind every expression against an empty, typed feature table: catches type errors at load."""
        empty = pa.table({c: pa.array([], type=arrow_type(kind)) for c, kind in self.types.items()})
        con = duckdb.connect()
        try:
            con.register("features_in", empty)
            source = "features_in"
            for column in derived:
                try:
                    con.execute(f"CREATE OR REPLACE TEMP VIEW v_{column.name} AS "
                                f"SELECT *, ({column.sql}) AS {column.name} FROM {source}")
                except duckdb.Error as exc:
                    raise self.fail(f"derived '{column.name}'", _duckdb_problem(exc)) from None
                source = f"v_{column.name}"
            # Every rule bound in one DESCRIBE (one per rule took ~0.4 s a run); when that fails, one by one
            # below, which names the rule at fault.
            all_rules = ", ".join(f"({rule.sql}) AS r{i}" for i, rule in enumerate(rules))
            try:
                described = con.execute(f"DESCRIBE SELECT {all_rules} FROM {source}").fetchall()
                types = [row[1] for row in described]
            except duckdb.Error:
                types = [None] * len(rules)
            for rule, type_ in zip(rules, types, strict=True):
                if type_ == "BOOLEAN":
                    continue
                try:
                    described = con.execute(f"DESCRIBE SELECT ({rule.sql}) AS fires FROM {source}").fetchall()
                except duckdb.Error as exc:
                    raise self.fail(f"rule '{rule.id}'", _duckdb_problem(exc)) from None
                if described[0][1] != "BOOLEAN":
                    raise self.fail(f"rule '{rule.id}'", f"condition must be true/false, but '{rule.sql}' "
                                                         f"gives {described[0][1]}")
        finally:
            con.close()


def _duckdb_problem(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("LINE")]
    return "expression is invalid: " + (lines[0] if lines else type(exc).__name__)


def describe_rule_set(rule_set: RuleSet) -> str:
    counts = {tier: sum(rule.tier == tier for rule in rule_set.rules) for tier in reversed(TIERS)}
    intervals = ", ".join(f"{tier} {rule_set.intervals[tier]} d" for tier in reversed(TIERS))
    return (f"rule set '{rule_set.name}' version {rule_set.version} (fingerprint {rule_set.fingerprint}) OK: "
            f"{len(rule_set.rules)} rules ({', '.join(f'{n} {t}' for t, n in counts.items())}), "
            f"default '{rule_set.default_rule.id}' -> {rule_set.default_rule.tier}; intervals {intervals}; "
            f"reads {len(rule_set.input_columns)} feature columns")
