"""Turn the contract + validation definitions into DuckDB SQL for one table.

Two nested SELECTs: `typed` parses each cell into its contract type (keeping the cleaned text of parsed
columns as `__s_<col>`), `checked` evaluates every row check as one CASE expression so the FIRST failing
reason in definitions/validation.yaml order is the row's `__reason` (NULL = passes). Duplicates on the
table key are found afterwards among passing rows (risk/validate/run.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from risk import definitions
from risk.definitions import ColumnSpec, TableSpec
from risk.errors import InputFileError
from risk.io import InputTable
from risk.sql import identifier as q  # short: the plan quotes every column name
from risk.sql import literal
from risk.validate import codes, identifiers

INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
# the canonical column's type: the contract's one mapping (the features' views read the same types)
OUTPUT_TYPES = definitions.SQL_TYPES
DETAIL_VALUE_CHARS = 40
NATIONAL_ID_DIGITS = "__national_id_digits"
LAB_UNIT_KEY = "__unit_key"


def physical_kind(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    if upper == "VARCHAR":
        return "text"
    if upper in INTEGER_TYPES:
        return "integer"
    if upper in {"FLOAT", "DOUBLE", "REAL"} or upper.startswith("DECIMAL"):
        return "decimal"
    if upper == "DATE":
        return "date"
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    if upper == "BOOLEAN":
        return "bool"
    return "other"


# Which physical kinds can hold each contract type. Text is parsed cell by cell (bad cells quarantined).
COMPATIBLE = {
    "string": {"text", "integer"},
    "float": {"text", "integer", "decimal"},
    "int": {"text", "integer", "decimal"},
    "date": {"text", "date", "timestamp"},
    "timestamp": {"text", "date", "timestamp"},
    "bool": {"text", "bool", "integer"},
}


@dataclass
class Check:
    reason: str
    predicate: str  # SQL, TRUE when the row fails
    detail: str  # SQL VARCHAR expression explaining the failure


@dataclass
class TablePlan:
    spec: TableSpec
    typed_columns: dict[str, str]  # column -> SQL typed expression over the scan
    text_columns: dict[str, str]  # column -> SQL cleaned text (only for columns parsed from text)
    extra_typed: dict[str, str] = field(default_factory=dict)  # helper columns (lab unit factors...)
    # columns the helpers read, computed once per row beneath them (the lab unit key, compared ~20 times)
    helper_inputs: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    output_columns: dict[str, str] = field(default_factory=dict)  # canonical column -> SQL over `checked`
    joins_persons: bool = False

    @property
    def parsed_columns(self) -> list[str]:
        return [name for name in self.text_columns if self.spec.columns[name].type != "string"]


def _clean_text(column: str) -> str:
    return f"NULLIF(trim({q(column)}), '')"


def _typed_expression(col: ColumnSpec, kind: str | None, rules: dict[str, Any]) -> tuple[str, str | None]:
    """(typed SQL, cleaned-text SQL or None) for one column; kind None = column absent from the file."""
    out_type = OUTPUT_TYPES[col.type]
    if kind is None:
        return f"CAST(NULL AS {out_type})", None
    name = q(col.name)
    if kind == "text":
        text = _clean_text(col.name)
        if col.type == "string":
            return _normalise_string(col, text), text
        if col.type == "float":
            return f"NULLIF(TRY_CAST({text} AS DOUBLE), 'NaN'::DOUBLE)", text
        if col.type == "int":
            as_double = f"TRY_CAST({text} AS DOUBLE)"
            return f"(CASE WHEN {as_double} = round({as_double}) THEN CAST({as_double} AS BIGINT) END)", text
        if col.type == "bool":
            true_set = ", ".join(literal(v) for v in rules["bool_true"])
            false_set = ", ".join(literal(v) for v in rules["bool_false"])
            return (
                f"(CASE WHEN lower({text}) IN ({true_set}) THEN true "
                f"WHEN lower({text}) IN ({false_set}) THEN false END)"
            ), text
        # Dates may carry a midnight time part; timestamps may be bare dates (midnight).
        return f"TRY_CAST({text} AS {out_type})", text
    if col.type == "string":
        return _normalise_string(col, f"NULLIF(trim(CAST({name} AS VARCHAR)), '')"), None
    if col.type == "float":
        return f"NULLIF(CAST({name} AS DOUBLE), 'NaN'::DOUBLE)", None
    # Numbers that do not fit (2.5 days, a flag of 7) get their text kept so they count as bad cells.
    if col.type == "int" and kind == "decimal":
        return (
            f"(CASE WHEN {name} = round({name}) THEN CAST({name} AS BIGINT) END)",
            f"CAST({name} AS VARCHAR)",
        )
    if col.type == "bool" and kind == "integer":
        return f"(CASE {name} WHEN 1 THEN true WHEN 0 THEN false END)", f"CAST({name} AS VARCHAR)"
    return f"CAST({name} AS {out_type})", None


def _normalise_string(col: ColumnSpec, text: str) -> str:
    if col.allowed:
        cases = " ".join(f"WHEN {literal(v.lower())} THEN {literal(v)}" for v in col.allowed)
        return f"(CASE lower({text}) {cases} ELSE {text} END)"
    if col.value_set:
        return f"lower({text})"
    if col.format == "icd10":
        return codes.sql_normalise_icd10(text)
    if col.format == "icd10_list":
        return codes.sql_normalise_icd10_list(text)
    if col.format == "atc":
        return codes.sql_normalise_atc(text)
    if col.name == "national_id":
        return f"NULLIF(upper({identifiers.sql_stripped(text)}), '')"
    return text


def _shown(plan: TablePlan, column: str, rules: dict[str, Any]) -> str:
    """The cell as the user wrote it, shortened; never for personal identifiers."""
    if column in rules["personal_identifiers"]:
        return "'(hidden)'"
    text = q(f"__s_{column}") if column in plan.text_columns else f"CAST({q(column)} AS VARCHAR)"
    return f"coalesce(left({text}, {DETAIL_VALUE_CHARS}), '')"


def unit_key(unit: str) -> str:
    """Lab units compared case-insensitively, without spaces, micro sign as 'u'."""
    return unit.strip().lower().replace(" ", "").replace("μ", "u").replace("µ", "u")


def _sql_unit_key(expr: str) -> str:
    return f"replace(replace(replace(lower({expr}), ' ', ''), 'μ', 'u'), 'µ', 'u')"


def _lab_helpers() -> dict[str, str]:
    tests = definitions.lab_units()["tests"]
    unit = q(LAB_UNIT_KEY)
    factor_cases, offset_cases, canonical_cases, low_cases, high_cases = [], [], [], [], []
    for code, test in tests.items():
        for source_unit, (factor, offset) in test["units"].items():
            when = f"WHEN {q('test')} = {literal(code)} AND {unit} = {literal(unit_key(source_unit))}"
            factor_cases.append(f"{when} THEN {float(factor)!r}")
            offset_cases.append(f"{when} THEN {float(offset)!r}")
        canonical_cases.append(f"WHEN {literal(code)} THEN {literal(test['unit'])}")
        low_cases.append(f"WHEN {literal(code)} THEN {float(test['range'][0])!r}")
        high_cases.append(f"WHEN {literal(code)} THEN {float(test['range'][1])!r}")
    test_col = q("test")
    return {
        "__factor": f"(CASE {' '.join(factor_cases)} END)",
        "__offset": f"(CASE {' '.join(offset_cases)} END)",
        "__canonical_unit": f"(CASE {test_col} {' '.join(canonical_cases)} END)",
        "__low": f"(CASE {test_col} {' '.join(low_cases)} END)",
        "__high": f"(CASE {test_col} {' '.join(high_cases)} END)",
    }


COMPARISON = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<|=)\s*(\w+)\s*$")


def build_plan(source: InputTable | None, spec: TableSpec, as_of: date) -> TablePlan:
    rules = definitions.validation_rules()
    typed: dict[str, str] = {}
    text: dict[str, str] = {}
    for col in spec.columns.values():
        kind = None
        if source is not None and col.name in source.column_types:
            kind = physical_kind(source.column_types[col.name])
            if source.column_types[col.name].strip('"').upper() == "NULL":
                kind = None  # a column of no values at all (pandas writes an empty object column so)
            elif kind not in COMPATIBLE[col.type]:
                raise InputFileError(
                    str(source.path),
                    f"column has type {source.column_types[col.name]}, which cannot hold {col.type} values",
                    col.name,
                )
        typed[col.name], text_sql = _typed_expression(col, kind, rules)
        if text_sql is not None:
            text[col.name] = text_sql
    plan = TablePlan(spec, typed, text, joins_persons=spec.name != "persons" and "person_id" in spec.columns)
    if spec.name == "labs":
        plan.helper_inputs = {LAB_UNIT_KEY: _sql_unit_key(q("unit"))}
        plan.extra_typed = _lab_helpers()
    if "national_id" in spec.columns:
        plan.extra_typed[NATIONAL_ID_DIGITS] = f"TRY_CAST(substr({q('national_id')}, 1, 17) AS BIGINT)"
    plan.checks = _checks(plan, as_of, rules)
    plan.output_columns = _outputs(plan)
    return plan


def _checks(plan: TablePlan, as_of: date, rules: dict[str, Any]) -> list[Check]:
    spec = plan.spec
    by_reason: dict[str, list[Check]] = {reason: [] for reason in rules["reasons"]}

    def add(reason: str, predicate: str, detail: str) -> None:
        if reason not in by_reason:
            raise KeyError(f"reason {reason} is not listed in validation.yaml")
        by_reason[reason].append(Check(reason, predicate, detail))

    as_of_sql = f"DATE '{as_of.isoformat()}'"
    for col in spec.columns.values():
        c = q(col.name)
        label = literal(f"{col.name}=")
        shown = _shown(plan, col.name, rules)
        if col.name in plan.parsed_columns:
            add("bad_value", f"__bad_{col.name}", f"{label} || {shown} || {literal(f' is not a {col.type}')}")
        if not col.nullable:
            add("missing_value", f"{c} IS NULL", literal(f"{col.name} is empty"))
        if col.allowed:
            allowed = ", ".join(literal(v) for v in col.allowed)
            add("not_allowed", f"{c} NOT IN ({allowed})", f"{label} || {shown}")
        if col.value_set:
            members = ", ".join(literal(v) for v in sorted(definitions.value_set(col.value_set)))
            add(rules["value_set_reasons"][col.value_set], f"{c} NOT IN ({members})", f"{label} || {shown}")
        if col.format in ("icd10", "icd10_list"):
            valid = codes.sql_is_icd10(c) if col.format == "icd10" else codes.sql_is_icd10_list(c)
            add("malformed_icd10", f"NOT {valid}", f"{label} || {shown}")
        if col.format == "atc":
            add("malformed_atc", f"NOT {codes.sql_is_atc(c)}", f"{label} || {shown}")
        if col.range:
            low, high = col.range
            bounds = f" outside {low:g}-{high:g} {col.unit or ''}".rstrip()
            add(
                "out_of_range",
                f"NOT ({c} BETWEEN {float(low)!r} AND {float(high)!r})",
                f"{label} || {shown} || {literal(bounds)}",
            )
        if col.type == "date":
            add(
                "future_date",
                f"{c} > {as_of_sql}",
                f"{label} || {shown} || {literal(f' after {as_of.isoformat()}')}",
            )
        if col.type == "timestamp":
            add(
                "future_date",
                f"{c} >= {as_of_sql} + INTERVAL 1 DAY",
                f"{label} || {shown} || {literal(f' after {as_of.isoformat()}')}",
            )
    if spec.name == "persons":
        earliest = str(rules["earliest_birth_date"])
        add(
            "out_of_range",
            f"{q('birth_date')} < DATE '{earliest}'",
            f"'birth_date=' || {_shown(plan, 'birth_date', rules)} || {literal(' before ' + earliest)}",
        )
    if spec.name == "labs":
        add(
            "unknown_unit",
            "__factor IS NULL",
            f"'unit=' || {_shown(plan, 'unit', rules)} || ' for test ' || {q('test')}",
        )
        converted = f"({q('value')} * __factor + __offset)"
        add(
            "out_of_range",
            f"NOT ({converted} BETWEEN __low AND __high)",
            f"{q('test')} || '=' || CAST(round({converted}, 3) AS VARCHAR) || ' ' || __canonical_unit || "
            "' outside ' || CAST(__low AS VARCHAR) || '-' || CAST(__high AS VARCHAR)",
        )
    for comparison in rules.get("comparisons", []):
        if comparison["table"] != spec.name:
            continue
        match = COMPARISON.match(comparison["check"])
        if match is None:
            raise KeyError(f"validation.yaml: cannot read comparison {comparison['check']!r}")
        left, op, right = match.groups()
        add(
            comparison["reason"],
            f"NOT ({q(left)} {op} {q(right)})",
            f"{literal(left + '=')} || {_shown(plan, left, rules)} || "
            f"{literal(f', {right}=')} || {_shown(plan, right, rules)}",
        )
    if plan.joins_persons:
        add("unknown_person", "__p_person_id IS NULL", "'person_id not among accepted persons'")
        for col in spec.columns.values():
            if col.type in ("date", "timestamp"):
                add(
                    "before_birth",
                    f"CAST({q(col.name)} AS DATE) < __p_birth_date",
                    f"{literal(col.name + '=')} || {_shown(plan, col.name, rules)} || ' before birth'",
                )
        event = rules["event_date"].get(spec.name)
        if event:
            grace = int(rules["after_death_grace_days"])
            add(
                "after_death",
                f"CAST({q(event)} AS DATE) > __p_death_date + {grace}",
                f"{literal(event + '=')} || {_shown(plan, event, rules)} || "
                f"' more than {grace} days after death'",
            )
    return [check for checks in by_reason.values() for check in checks]


def _outputs(plan: TablePlan) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for col in plan.spec.columns.values():
        if col.name == "national_id":
            # The typed column is already stripped and upper-cased (see _normalise_string).
            national_id = q("national_id")
            outputs["national_id_hash"] = identifiers.sql_hash_national_id(national_id, normalised=True)
            outputs["national_id_masked"] = identifiers.sql_mask_national_id(national_id, normalised=True)
            outputs["national_id_valid"] = codes.sql_national_id_valid(national_id, q(NATIONAL_ID_DIGITS))
        elif plan.spec.name == "labs" and col.name == "value":
            outputs["value"] = f"({q('value')} * __factor + __offset)"
        elif plan.spec.name == "labs" and col.name == "unit":
            outputs["unit"] = "__canonical_unit"
        else:
            outputs[col.name] = q(col.name)
    outputs["source_row"] = "source_row"
    return outputs


def typed_sql(plan: TablePlan, scan_sql: str) -> str:
    selects = ["source_row"]
    selects += [f"{expr} AS {q(name)}" for name, expr in plan.typed_columns.items()]
    selects += [f"{expr} AS {q('__s_' + name)}" for name, expr in plan.text_columns.items()]
    inner = f"SELECT {', '.join(selects)} FROM {scan_sql}"
    if plan.helper_inputs:
        inputs = ", ".join(f"{expr} AS {q(name)}" for name, expr in plan.helper_inputs.items())
        inner = f"SELECT *, {inputs} FROM ({inner})"
    if not plan.extra_typed:
        return inner
    extra = ", ".join(f"{expr} AS {q(name)}" for name, expr in plan.extra_typed.items())
    return f"SELECT *, {extra} FROM ({inner})"


def check_sql(plan: TablePlan, scan_sql: str) -> str:
    """Rows with typed columns, bad-cell flags, the accepted persons' columns and `__check`: the index of
    the first failing check in plan.checks (NULL when the row passes). Filter on `__check IS NULL`, not
    on a reason built from it: DuckDB then evaluates each predicate once per row."""
    bad_flags = [
        f"({q('__s_' + n)} IS NOT NULL AND {q(n)} IS NULL) AS {q('__bad_' + n)}" for n in plan.parsed_columns
    ]
    typed = f"SELECT *{''.join(', ' + f for f in bad_flags)} FROM ({typed_sql(plan, scan_sql)})"
    if plan.joins_persons:
        typed = (
            f"SELECT t.*, p.person_id AS __p_person_id, p.birth_date AS __p_birth_date, "
            f"p.death_date AS __p_death_date FROM ({typed}) t "
            "LEFT JOIN persons_ok p ON t.person_id = p.person_id"
        )
    # Each predicate is evaluated once: the index of the first failing check, then its reason and detail.
    whens = " ".join(f"WHEN {c.predicate} THEN {i}" for i, c in enumerate(plan.checks))
    return f"SELECT *, CASE {whens} END AS __check FROM ({typed})"


def checked_sql(plan: TablePlan, scan_sql: str) -> str:
    """Rows with typed columns, bad-cell flags, a 64-bit hash of the table key, `__reason` and `__detail`
    (NULL when the row passes)."""
    return reasons_sql(plan, check_sql(plan, scan_sql))


def reasons_sql(plan: TablePlan, checked_rows_sql: str) -> str:
    """`checked_sql` over rows of `check_sql` (possibly filtered): the reason and detail from `__check`."""
    # A CASE, not a list literal indexed by __check: DuckDB builds the list for every row.
    reasons = " ".join(f"WHEN {i} THEN {literal(c.reason)}" for i, c in enumerate(plan.checks))
    details = " ".join(f"WHEN {i} THEN {c.detail}" for i, c in enumerate(plan.checks))
    keep = [
        "source_row",
        *(q(n) for n in plan.typed_columns),
        *(q(n) for n in plan.extra_typed),
        *(q("__bad_" + n) for n in plan.parsed_columns),
        f"hash({', '.join(q(k) for k in plan.spec.key)}) AS __key_hash",
    ]
    return (
        f"SELECT {', '.join(keep)}, CASE __check {reasons} END AS __reason, "
        f"CASE __check {details} END AS __detail "
        f"FROM ({checked_rows_sql})"
    )
