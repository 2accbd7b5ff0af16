"""A run folder opened for indicator queries: DuckDB views over RUN_DIR/canonical/*.parquet (+ tiers)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from risk import definitions
from risk.errors import InputFileError
from risk.indicators.definitions import IndicatorSet, indicator_set
from risk.run.folder import RunFolder
from risk.run.tables import parquet_source

REQUIRED_TABLES = ("persons", "conditions")


@dataclass
class Run:
    """An open run. Use as a context manager or call close()."""

    path: Path
    con: duckdb.DuckDBPyConnection
    definitions: IndicatorSet
    has_tiers: bool
    manifest: dict[str, Any]
    # Cohorts and measures already computed for a set of periods: (name, periods key) -> temp table.
    materialised: dict[tuple[str, str], str] = field(default_factory=dict)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @property
    def as_of(self) -> date | None:
        return RunFolder(self.path).as_of

    def place_names(self, level: str) -> dict[str, str]:
        """id -> name of each township / unit / village from the optional `*_name` columns of persons
        (the most frequent name per id); ids without a name are left out (reports then show the id)."""
        if level not in ("township", "unit", "village"):
            return {}
        rows = self.con.execute(
            f"SELECT {level}_id, mode({level}_name) FROM persons "
            f"WHERE {level}_name IS NOT NULL AND trim({level}_name) <> '' GROUP BY 1"
        ).fetchall()
        return {str(key): str(name) for key, name in rows}

    def last_data_date(self) -> date | None:
        found = self.con.execute("SELECT max(CAST(measured_at AS DATE)) FROM vitals").fetchone()
        return found[0] if found else None

    def provenance(self) -> dict[str, str]:
        from risk.provenance import code_version

        validation = self.manifest.get("validation", {})
        versions = self.manifest.get("versions", {})
        return {
            "run": self.path.name,
            "as_of": str(self.as_of or "n/a"),
            "data_fingerprint": str(
                versions.get("data_fingerprint") or validation.get("input_fingerprint") or "unknown"
            ),
            "contract_version": str(
                versions.get("contract")
                or validation.get("contract_version")
                or definitions.contract().version
            ),
            "indicator_definitions_version": self.definitions.version,
            "rule_set_version": str(versions.get("rule_set", "n/a")),
            "code_version": code_version(),
        }


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = {}
    for name, key in (("validation.json", "validation"), ("run.json", None)):
        path = run_dir / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputFileError(str(path), f"cannot be read as JSON ({exc})") from exc
            if key:
                manifest[key] = data
            elif isinstance(data, dict):
                manifest.update(data)
    return manifest


def _create_table_view(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> None:
    spec = definitions.contract().tables[table]
    path = folder / f"{table}.parquet"
    if not path.is_file():
        if table in REQUIRED_TABLES:
            raise InputFileError(str(path), f"the run has no canonical '{table}' table")
        columns = ", ".join(
            f"CAST(NULL AS {definitions.SQL_TYPES[c.type]}) AS {c.name}" for c in spec.columns.values()
        )
        con.execute(f"CREATE VIEW {table} AS SELECT {columns} WHERE FALSE")
        return
    present = {
        row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {parquet_source(path)}").fetchall()
    }
    # Optional contract columns absent from the file read as NULL, so definitions can rely on them.
    missing = [c for c in spec.columns.values() if c.name not in present and c.name != "national_id"]
    extra = "".join(f", CAST(NULL AS {definitions.SQL_TYPES[c.type]}) AS {c.name}" for c in missing)
    con.execute(f"CREATE VIEW {table} AS SELECT *{extra} FROM {parquet_source(path)}")


def open_run(run_dir: str | Path, indicators: IndicatorSet | None = None, threads: int | None = None) -> Run:
    """Open RUN_DIR (a `risk nightly` run or a `risk validate` output) for indicator queries."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(str(run_dir), "run folder does not exist")
    folder = RunFolder(run_dir).canonical
    indicators = indicators or indicator_set()
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for table in definitions.contract().tables:
        _create_table_view(con, table, folder)
    cx = definitions.complications()[["group", "icd10_prefix"]].rename(columns={"group": "cx_group"})
    con.register("complication_prefixes_df", cx)
    con.execute("CREATE TABLE complication_prefixes AS SELECT * FROM complication_prefixes_df")
    con.unregister("complication_prefixes_df")
    tiers_path = RunFolder(run_dir).tiers
    has_tiers = tiers_path.is_file()
    if has_tiers:
        con.execute(f"CREATE VIEW tiers AS SELECT * FROM {parquet_source(tiers_path)}")
    for name, sql in indicators.views.items():
        con.execute(f"CREATE VIEW {name} AS {indicators.render(sql)}")
    return Run(run_dir, con, indicators, has_tiers, _read_manifest(run_dir))
