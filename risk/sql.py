"""The one way to put a value or a name into SQL text, and the one placeholder syntax.

- `literal(value)`: a SQL literal for a string or path (quoted, embedded quotes doubled), a number, a
  boolean, a date (DATE '...') or a timestamp (TIMESTAMP '...'); `literal_list` for `IN (...)` lists.
- `identifier(name)`: a double-quoted name.
- `bind(sql, params)`: SQL templates (risk/features/sql/*.sql, indicators.yaml, the SQL built in code) name
  their parameters `:name`; each is replaced by `literal(value)`, or inserted as is when the value is
  `Sql` (an already-rendered fragment). `::` casts and names inside words are left alone.

Values that come from patient data are never put into SQL text; they go through DuckDB's `?` parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from risk.errors import DefinitionError

PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z][a-z0-9_]*)")


class Sql(str):
    """SQL text that `bind` inserts as is (a cohort's query, an already-rendered list)."""


def escape(text: str) -> str:
    """The inside of a string literal: single quotes doubled."""
    return text.replace("'", "''")


def literal(value: str | Path | float | date | datetime | bool) -> str:
    """One value as a SQL literal."""
    if isinstance(value, Sql):
        return str(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str | Path):
        return "'" + escape(str(value)) + "'"
    raise DefinitionError(f"{value!r} cannot be written as a SQL literal")


def literal_list(values: Iterable[Any]) -> Sql:
    """Comma-separated literals, for `IN (...)`."""
    return Sql(", ".join(literal(v) for v in values))


def identifier(name: str) -> str:
    """Name in double quotes, embedded double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def bind(sql: str, params: Mapping[str, Any], where: str = "SQL") -> str:
    """`sql` with every `:name` replaced by the literal of params[name] (lists become literal lists)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise DefinitionError(f"{where} uses unknown parameter :{name}")
        value = params[name]
        return literal_list(value) if isinstance(value, list | tuple) else literal(value)

    return PLACEHOLDER.sub(substitute, sql)
