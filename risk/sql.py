"""The one way to put a value or a name into SQL text: `literal` (a quoted string literal, paths included)
and `identifier` (a double-quoted name). Values that come from data go through DuckDB's `?` parameters."""

from __future__ import annotations

from pathlib import Path


def literal(value: str | Path) -> str:
    """'value' with embedded quotes doubled; a path as its text."""
    return "'" + str(value).replace("'", "''") + "'"


def identifier(name: str) -> str:
    """Name in double quotes, embedded double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'
