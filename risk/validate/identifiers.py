"""National-ID hashing and masking as DuckDB SQL, equal to risk.privacy's functions but vectorised.

risk.privacy.hash_national_id is an HMAC-SHA256 of `id.strip().upper()`; calling it once per row from
Python costs seconds per million persons, so validation computes the same HMAC in SQL with DuckDB's
sha256 (RFC 2104: H((K xor opad) || H((K xor ipad) || m))). Values with non-ASCII characters, where SQL
and Python case/whitespace rules could differ, go through the Python function. Tests check equality.
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa

from risk import privacy

BLOCK = 64  # SHA-256 block size in bytes
# Characters str.strip() removes in ASCII.
PY_WHITESPACE = r"[ \t\n\r\x{0b}\x{0c}\x{1c}-\x{1f}]"


def _pads() -> tuple[bytes, bytes]:
    key = privacy._key()  # the one place the county key is read; reused so both paths agree
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


PADS_TABLE = "risk_id_key_pads"
PYTHON_HASH = "risk_hash_national_id"


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Key pads as a temp table (never in SQL text, which DuckDB may echo in errors) + Python fallback."""
    inner_pad, outer_pad = _pads()
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PADS_TABLE} AS "
                "SELECT $1::BLOB AS inner_pad, $2::BLOB AS outer_pad", [inner_pad, outer_pad])
    con.create_function(PYTHON_HASH, _hash_batch, ["VARCHAR"], "VARCHAR", type="arrow", side_effects=False)


def _hash_batch(ids: pa.Array) -> pa.Array:
    return pa.array([privacy.hash_national_id(value) for value in ids.to_pylist()], type=pa.string())


def sql_stripped(expr: str) -> str:
    return f"regexp_replace({expr}, '^{PY_WHITESPACE}+|{PY_WHITESPACE}+$', '', 'g')"


def sql_hash_national_id(expr: str, *, normalised: bool = False) -> str:
    """SQL equal to privacy.hash_national_id(expr), on a connection prepared with register().

    `normalised`: expr is already stripped and upper-cased (saves two regex passes per row).
    """
    value = expr if normalised else f"upper({sql_stripped(expr)})"
    inner = f"unhex(sha256((SELECT inner_pad FROM {PADS_TABLE}) || encode({value})))"
    sql_hmac = f"sha256((SELECT outer_pad FROM {PADS_TABLE}) || {inner})"
    return (f"(CASE WHEN {expr} IS NULL OR {expr} = '' THEN NULL "
            f"WHEN regexp_matches({expr}, '[^\\x{{00}}-\\x{{7F}}]') THEN {PYTHON_HASH}({expr}) "
            f"ELSE {sql_hmac} END)")


def sql_mask_national_id(expr: str, *, normalised: bool = False) -> str:
    """SQL equal to privacy.mask_national_id(expr); `normalised`: expr is already stripped."""
    value = expr if normalised else sql_stripped(expr)
    keep = privacy.MASK_KEEP
    return (f"(CASE WHEN {expr} IS NULL OR {expr} = '' THEN NULL "
            f"WHEN length({value}) <= 6 THEN repeat('*', length({value})) "
            f"ELSE repeat('*', length({value}) - {keep}) || {value}[-{keep}:] END)")
