"""Publish benchmark (issue 19, part 4): `risk publish` of one run folder into a fresh SQLite store and,
with --pg, into a fresh PostgreSQL schema, each against a reference measured in the same run.

The reference is the plainest bulk write of the biggest table with the DBAPI: the run's serving_patients
rows (read back from the store just published, not timed) inserted into an empty table of the same
columns without indexes, in one transaction: sqlite3 `executemany` into a fresh WAL file with the store's
pragmas, psycopg 3 COPY into a fresh schema. Publish does more than that (it builds the rows from Parquet
and also loads the search terms and tier history, with their indexes), so the ratio says how far publish
is from only writing its largest table. `peak MiB` is the process's peak resident memory right after that
backend's publish: for the first backend, the publish alone (SQLite's page cache included).

    RISK_ID_KEY=benchmark-key .venv/bin/python benchmarks/publish.py --run /tmp/s19/run-other-1m \
        --work /tmp/publish-bench [--pg postgresql://risk:...@127.0.0.1:5432/risk_pub19] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from risk.serving import schema
from risk.serving.publish import publish_run
from risk.serving.store import normalise_store_url, open_store

COLUMNS = [c.name for c in schema.patients.columns]


def _timed(work: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _patient_rows(store: str, run_id: str) -> list[tuple[Any, ...]]:
    engine = open_store(store)
    try:
        with engine.connect() as conn:
            query = select(*schema.patients.columns).where(schema.patients.c.run_id == run_id)
            return [tuple(row) for row in conn.execute(query)]
    finally:
        engine.dispose()


def _sqlite_reference(path: Path, rows: list[tuple[Any, ...]]) -> float:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-1048576"):
        con.execute(f"PRAGMA {pragma}")
    con.execute(f"CREATE TABLE patients ({', '.join(COLUMNS)})")
    started = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany(f"INSERT INTO patients VALUES ({', '.join('?' for _ in COLUMNS)})", rows)
    con.execute("COMMIT")
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def _pg_reference(url: str, store_schema: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    name = f"ref_{secrets.token_hex(4)}"
    plain = normalise_store_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
        try:
            con.execute(
                f"CREATE TABLE {name}.patients AS SELECT * FROM {store_schema}.serving_patients WITH NO DATA"
            )  # same column types, no key or index
            started = time.perf_counter()
            copy_sql = f"COPY {name}.patients ({', '.join(COLUMNS)}) FROM STDIN"
            with con.transaction(), con.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            return time.perf_counter() - started
        finally:
            con.execute(f"DROP SCHEMA {name} CASCADE")


def _fresh_pg_store(base: str) -> tuple[str, str]:
    """A fresh schema in the database of `base`; the store URL points its search_path there."""
    name = f"pub_{secrets.token_hex(4)}"
    admin = create_engine(normalise_store_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{name}", name


def _drop_pg_schema(base: str, name: str) -> None:
    admin = create_engine(normalise_store_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    admin.dispose()


def bench(run: Path, work: Path, pg: str | None) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    results = []
    backends = [("sqlite", None)] + ([("postgresql", pg)] if pg else [])
    for backend, base in backends:
        schema_name = None
        if base is None:
            store = str(work / "store.db")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{store}{suffix}").unlink(missing_ok=True)
        else:
            store, schema_name = _fresh_pg_store(base)
        try:
            published, wall, cpu = _timed(lambda store=store: publish_run(run, store))
            # the process's peak so far: publish alone for the first backend (before the reference rows)
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"{backend}: {published.render()}", flush=True)
            rows = _patient_rows(store, published.run_id)
            if base is None:
                reference = _sqlite_reference(work / "reference.db", rows)
            else:
                reference = _pg_reference(base, schema_name, rows)
        finally:
            if schema_name is not None:
                _drop_pg_schema(base, schema_name)
        results.append(
            {
                "backend": backend,
                "run": str(run),
                "persons": published.persons,
                "search_terms": published.search_terms,
                "publish_s": round(wall, 2),
                "publish_cpu_s": round(cpu, 2),
                "reference_s": round(reference, 2),
                "ratio": round(wall / reference, 2),
                "peak_mib_so_far": peak_mib,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="Run folder to publish")
    parser.add_argument("--work", type=Path, required=True, help="Scratch folder for the SQLite stores")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL of a database for a fresh schema")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("RISK_ID_KEY", "benchmark-key")
    results = bench(args.run, args.work, args.pg)
    print(
        f"\n{'backend':<11} {'persons':>9} {'terms':>10} {'publish s':>9} {'cpu s':>7} {'ref s':>7} "
        f"{'ratio':>6} {'peak MiB':>9}"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['persons']:>9,} {r['search_terms']:>10,} {r['publish_s']:>9.1f} "
            f"{r['publish_cpu_s']:>7.1f} {r['reference_s']:>7.1f} {r['ratio']:>6.2f} "
            f"{r['peak_mib_so_far']:>9,}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
