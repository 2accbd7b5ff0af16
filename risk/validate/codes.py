"""Code formats (ICD-10, ATC, national ID) in Python and as DuckDB SQL, from definitions/validation.yaml.

The SQL builders are what validation runs; the Python functions are the same rules for other modules
(FHIR import, tests) and are checked against the SQL in tests/test_validate_codes.py.
"""

from __future__ import annotations

import re
from functools import lru_cache

from risk import definitions
from risk.sql import literal

NATIONAL_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
NATIONAL_ID_CHECK_CHARS = "10X98765432"  # ISO 7064 MOD 11-2, GB 11643-1999


@lru_cache(maxsize=8)
def format_pattern(name: str) -> str:
    return str(definitions.validation_rules()["formats"][name])


# A code whose first four characters are letters/digits gets a dot after the third ('e112' -> 'E11.2').
# Codes with a dot elsewhere, two dots or an inner space stay invalid: such typing slips ('I10..9',
# 'I 10', 'I1.0') are quarantined rather than guessed.
ICD10_DOT = r"^([A-Z0-9]{3})([A-Z0-9])"


def normalise_icd10(code: str | None) -> str | None:
    """Upper-case, trimmed; a dot-less code gets its dot after the third character."""
    if code is None:
        return None
    value = code.strip().upper()
    if not value:
        return None
    return re.sub(ICD10_DOT, r"\1.\2", value)


def is_icd10(code: str | None) -> bool:
    normalised = normalise_icd10(code)
    return normalised is not None and re.fullmatch(format_pattern("icd10"), normalised) is not None


def normalise_icd10_list(codes: str | None) -> str | None:
    """';'-separated list (full-width '；' accepted), each code normalised, empty items dropped."""
    if codes is None:
        return None
    items = [normalise_icd10(item) for item in codes.replace("；", ";").split(";")]
    kept = [item for item in items if item]
    return ";".join(kept) if kept else None


def normalise_atc(code: str | None) -> str | None:
    if code is None:
        return None
    compact = code.strip().upper().replace(" ", "")
    return compact or None


def is_atc(code: str | None) -> bool:
    normalised = normalise_atc(code)
    return normalised is not None and re.fullmatch(format_pattern("atc"), normalised) is not None


def national_id_is_valid(national_id: str | None) -> bool:
    value = (national_id or "").strip().upper()
    if re.fullmatch(format_pattern("national_id"), value) is None:
        return False
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], NATIONAL_ID_WEIGHTS, strict=True))
    return NATIONAL_ID_CHECK_CHARS[total % 11] == value[17]


def national_id_check_char(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, NATIONAL_ID_WEIGHTS, strict=True))
    return NATIONAL_ID_CHECK_CHARS[total % 11]


# --- the same rules as DuckDB SQL expressions over an already trimmed VARCHAR expression -------------


def sql_normalise_icd10(expr: str) -> str:
    # A well-formed code (nearly every one) is its own normalisation: one match instead of the rewrite.
    return (
        f"(CASE WHEN {sql_is_icd10(f'upper({expr})')} THEN upper({expr}) "
        f"ELSE NULLIF(regexp_replace(upper({expr}), '{ICD10_DOT}', '\\1.\\2'), '') END)"
    )


def sql_is_icd10(normalised_expr: str) -> str:
    return f"regexp_full_match({normalised_expr}, {literal(format_pattern('icd10'))})"


def sql_normalise_icd10_list(expr: str) -> str:
    """String-level regexes (no per-item lambdas, several times faster on millions of claims)."""
    text = f"upper(replace({expr}, '；', ';'))"
    text = f"regexp_replace({text}, '\\s*;\\s*', ';', 'g')"  # spaces around separators
    text = f"regexp_replace({text}, ';;+', ';', 'g')"  # empty items
    text = f"regexp_replace({text}, '^;|;$', '', 'g')"
    text = f"regexp_replace({text}, '(^|;)([A-Z0-9]{{3}})([A-Z0-9])', '\\1\\2.\\3', 'g')"
    # A well-formed list (nearly every one) is its own normalisation: one match instead of five rewrites.
    return f"(CASE WHEN {sql_is_icd10_list(f'upper({expr})')} THEN upper({expr}) ELSE NULLIF({text}, '') END)"


def sql_is_icd10_list(normalised_expr: str) -> str:
    code = format_pattern("icd10").removeprefix("^").removesuffix("$")
    return f"regexp_full_match({normalised_expr}, {literal(f'({code})(;({code}))*')})"


def sql_normalise_atc(expr: str) -> str:
    return f"NULLIF(replace(upper({expr}), ' ', ''), '')"


def sql_is_atc(normalised_expr: str) -> str:
    return f"regexp_full_match({normalised_expr}, {literal(format_pattern('atc'))})"


def sql_national_id_valid(normalised_expr: str, digits_expr: str | None = None) -> str:
    """`digits_expr`: optional BIGINT column holding TRY_CAST(substr(expr, 1, 17) AS BIGINT); picking the
    digits from it arithmetically costs about half of 17 text casts per row (DuckDB does not share a
    repeated cast inside one expression, hence a separate column)."""
    if digits_expr is None:
        digits = [f"CAST(substr({normalised_expr}, {i + 1}, 1) AS INTEGER)" for i in range(17)]
    else:
        digits = [f"(({digits_expr} // {10 ** (16 - i)}) % 10)" for i in range(17)]
    total = " + ".join(f"{d} * {w}" for d, w in zip(digits, NATIONAL_ID_WEIGHTS, strict=True))
    pattern = literal(format_pattern("national_id"))
    return (
        f"(CASE WHEN {normalised_expr} IS NULL THEN NULL "
        f"WHEN NOT regexp_full_match({normalised_expr}, {pattern}) THEN false "
        f"ELSE substr('{NATIONAL_ID_CHECK_CHARS}', (({total}) % 11) + 1, 1) "
        f"= substr({normalised_expr}, 18, 1) END)"
    )
