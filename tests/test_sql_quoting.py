"""One SQL literal / identifier helper and one placeholder syntax (`:name`) for the whole package."""

from __future__ import annotations

import ast
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from risk.errors import DefinitionError
from risk.sql import Sql, bind, identifier, literal, literal_list

ROOT = Path(__file__).resolve().parent.parent


def test_literals_round_trip_through_duckdb() -> None:
    values = ["plain", "it's", "a'';DROP TABLE x;--", "路径/县", 3, 2.5, True, date(2024, 2, 29)]
    row = duckdb.sql("SELECT " + ", ".join(literal(v) for v in values)).fetchall()[0]
    assert list(row) == values
    assert literal(datetime(2024, 7, 1)) == "TIMESTAMP '2024-07-01 00:00:00'"
    name = identifier('odd "name')
    assert duckdb.sql(f"SELECT {name} FROM (SELECT 1 AS {name})").fetchall()[0] == (1,)


def test_bind_quotes_values_leaves_casts_and_refuses_unknown_names() -> None:
    sql = bind(
        "SELECT x::DATE FROM t WHERE c = :code AND d <= :as_of AND k IN (:kinds) AND q = :raw",
        {"code": "o'clock", "as_of": date(2025, 1, 1), "kinds": ["a", "b'c"], "raw": Sql("other.col")},
    )
    assert sql == (
        "SELECT x::DATE FROM t WHERE c = 'o''clock' AND d <= DATE '2025-01-01' "
        "AND k IN ('a', 'b''c') AND q = other.col"
    )
    assert literal_list([1, "x"]) == "1, 'x'"
    with pytest.raises(DefinitionError, match=":missing"):
        bind("SELECT :missing", {})


def test_a_path_with_a_quote_is_read(tmp_path: Path) -> None:
    """Every path put into SQL goes through literal(): a folder name with a quote still works."""
    from risk.run.tables import parquet_source

    folder = tmp_path / "o'brien county"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(folder / "t.parquet")
    assert duckdb.sql(f"SELECT sum(a) FROM {parquet_source(folder / 't.parquet')}").fetchall()[0] == (3,)


def _quote_doublers() -> list[str]:
    """Functions in risk/ and pipelines/ other than risk/sql.py that double quotes themselves."""
    found = []
    for path in [*(ROOT / "risk").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if path == ROOT / "risk" / "sql.py" or ".replace(" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "replace"
                and len(node.args) == 2
                and all(isinstance(a, ast.Constant) for a in node.args)
                and (node.args[0].value, node.args[1].value) in {("'", "''"), ('"', '""')}
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_other_module_quotes_sql_by_hand() -> None:
    assert _quote_doublers() == []
