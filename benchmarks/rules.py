"""Rule baseline at county scale: assign_rule_tiers on N synthetic feature rows (default 1,000,000).

Each variant runs in its own subprocess so peak RSS is its own. Reference, same run: one DuckDB scan of
the same frame with a single condition (`bp_last_sbp >= 180`) — the floor any SQL rule engine pays.

    .venv/bin/python benchmarks/rules.py [--rows 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def synthetic_features(rows: int, seed: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    from risk.tiers.rule_columns import BOOLEAN, DATE, NUMERIC, feature_column_types

    rng = np.random.default_rng(seed)
    as_of = np.datetime64("2024-06-30")
    data: dict[str, object] = {}
    for column, kind in feature_column_types().items():
        if kind == NUMERIC:
            data[column] = rng.uniform(0, 1, rows)
        elif kind == BOOLEAN:
            data[column] = rng.random(rows) < 0.1
        elif kind == DATE:
            data[column] = as_of - rng.integers(0, 400, rows).astype("timedelta64[D]")
        else:
            data[column] = rng.choice(["a", "b"], rows)
    frame = pd.DataFrame(data)
    frame["person_id"] = [f"P{i:07d}" for i in range(rows)]
    frame["as_of"] = as_of
    frame["sex"] = rng.choice(["M", "F"], rows)
    frame["age"] = rng.uniform(35, 95, rows)
    frame["bp_last_sbp"] = rng.normal(140, 20, rows).round()
    frame["bp_last_dbp"] = rng.normal(85, 12, rows).round()
    frame["fpg_last"] = np.where(rng.random(rows) < 0.2, np.nan, rng.lognormal(2.0, 0.3, rows))
    frame["fu_days_since_last"] = rng.integers(0, 400, rows)
    frame["bp_days_since_last"] = rng.integers(0, 400, rows)
    frame["fu_consecutive_uncontrolled_bp"] = rng.integers(0, 4, rows)
    frame["fu_consecutive_uncontrolled_fpg"] = rng.integers(0, 4, rows)
    frame["fu_last_adherence"] = rng.choice(["regular", "intermittent", "none"], rows, p=[0.8, 0.15, 0.05])
    frame["cx_count"] = rng.integers(0, 3, rows) * (rng.random(rows) < 0.3)
    frame["egfr_last"] = rng.uniform(20, 120, rows)
    frame["chinapar_risk_10y"] = rng.uniform(0, 0.3, rows)
    return frame


def run_variant(variant: str, rows: int, seed: int) -> dict[str, float]:
    frame = synthetic_features(rows, seed)
    start = time.perf_counter()
    if variant == "reference":
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        con.register("f", pa.Table.from_pandas(frame[["bp_last_sbp"]], preserve_index=False))
        fired = con.sql("SELECT bp_last_sbp >= 180 AS r FROM f").to_arrow_table()
        summary = {"fired": int(fired.column(0).to_numpy(zero_copy_only=False).sum())}
    else:
        from risk.tiers import assign_rule_tiers

        tiers = assign_rule_tiers(frame)
        summary = {tier: int(n) for tier, n in tiers["tier_rules"].value_counts().items()}
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), **summary}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variant", choices=["reference", "rules"])
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.rows, args.seed)))
        return
    results = {}
    for variant in ("reference", "rules"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--rows", str(args.rows),
                              "--seed", str(args.seed)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{variant} failed:\n{out.stderr}")
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:>9}: {results[variant]}")
    ref, rules = results["reference"], results["rules"]
    print(f"rows {args.rows:,}: assign_rule_tiers {rules['seconds']} s "
          f"({rules['seconds'] / max(ref['seconds'], 1e-9):.1f}x the one-condition DuckDB scan), "
          f"peak RSS {rules['peak_rss_mb']} MB (reference process {ref['peak_rss_mb']} MB, "
          "both include building the synthetic frame)")


if __name__ == "__main__":
    main()
