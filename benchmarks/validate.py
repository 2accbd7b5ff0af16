"""Benchmark `risk validate` on synthetic counties (100k and 1M persons by default).

For each size: generate the county once with `risk synth` (reused when present), then in separate child
processes measure wall time and peak RSS of
  - the reference: a plain DuckDB copy of every input table to Parquet (read + write, no checks), and
  - `risk validate INPUT --out OUT --as-of 2025-12-31`.
Target (issue 2): 1,000,000 persons within 60 s and under 4 GiB peak memory on the 2-core machine.

    .venv/bin/python benchmarks/validate.py                      # 100k and 1M
    .venv/bin/python benchmarks/validate.py --persons 100000     # one size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RISK = [sys.executable, "-m", "risk.cli"]
TABLES = ["persons", "conditions", "vitals", "labs", "follow_ups", "encounters", "prescriptions"]
TARGET_SECONDS = 60.0
TARGET_GIB = 4.0

REFERENCE = """
import sys, duckdb
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
con = duckdb.connect()
for path in sorted(src.glob('*.parquet')) + sorted(src.glob('*.csv')):
    reader = 'read_parquet' if path.suffix == '.parquet' else 'read_csv'
    con.execute(f"COPY (SELECT * FROM {reader}('{path}')) TO '{dst / (path.stem + '.parquet')}' "
                "(FORMAT parquet, COMPRESSION zstd)")
"""


def measure_child(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Wall time, CPU time (user + system, all threads) and peak RSS of this child only (os.wait4)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-validate-{os.getpid()}.out"
    with out_path.open("w", encoding="utf-8") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    output = out_path.read_text(encoding="utf-8")
    out_path.unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 2**20, output  # ru_maxrss is KiB on Linux


def ensure_county(data_dir: Path, persons: int, fmt: str) -> Path:
    county = data_dir / f"county_{persons}_{fmt}"
    if (county / "_synth" / "meta.json").exists():
        print(f"reusing {county}")
        return county
    shutil.rmtree(county, ignore_errors=True)
    wall, _, _, _ = measure_child([*RISK, "synth", "--out", str(county), "--persons", str(persons),
                                "--format", fmt])
    print(f"generated {county} in {wall:.1f} s")
    return county


def bench(county: Path, work: Path) -> dict[str, float]:
    env = dict(os.environ, RISK_ID_KEY=os.environ.get("RISK_ID_KEY", "benchmark-key"))
    shutil.rmtree(work, ignore_errors=True)
    reference = [sys.executable, "-c", REFERENCE, str(county), str(work / "ref")]
    ref_wall, ref_cpu, ref_rss, _ = measure_child(reference, env)
    val_wall, val_cpu, val_rss, output = measure_child(
        [*RISK, "validate", str(county), "--out", str(work / "out"), "--as-of", "2025-12-31"], env)
    summary = json.loads((work / "out" / "validation.json").read_text(encoding="utf-8"))
    input_bytes = sum(p.stat().st_size for p in county.iterdir() if p.is_file())
    shutil.rmtree(work, ignore_errors=True)
    print(output.strip().split("\n", 1)[-1] if output else "")
    return {"rows": summary["rows_read"], "quarantined": summary["rows_quarantined"],
            "input_mb": input_bytes / 1e6, "ref_s": ref_wall, "ref_cpu": ref_cpu, "ref_gib": ref_rss,
            "validate_s": val_wall, "validate_cpu": val_cpu, "validate_gib": val_rss,
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/risk-bench-validate"))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {platform.python_version()}; load "
          f"{os.getloadavg()[0]:.1f}")
    results = {}
    for persons in args.persons:
        county = ensure_county(args.data_dir, persons, args.format)
        results[persons] = bench(county, args.data_dir / f"work_{persons}")
    print()
    # Wall time depends on what else runs on the machine (load); CPU time (all threads) much less so.
    print(f"{'persons':>10} {'rows':>12} {'MB in':>6} {'validate s':>11} {'cpu s':>7} {'peak GiB':>9} "
          f"{'ref copy s':>11} {'cpu s':>7} {'ref GiB':>8} {'ratio':>6} {'rows/s':>11} {'load':>5}")
    for persons, r in results.items():
        print(f"{persons:>10,} {r['rows']:>12,} {r['input_mb']:>6.0f} {r['validate_s']:>11.1f} "
              f"{r['validate_cpu']:>7.1f} {r['validate_gib']:>9.2f} {r['ref_s']:>11.1f} {r['ref_cpu']:>7.1f} "
              f"{r['ref_gib']:>8.2f} {r['validate_s'] / r['ref_s']:>6.2f} "
              f"{r['rows'] / r['validate_s']:>11,.0f} {r['load']:>5.1f}")
    if 1_000_000 in results:
        r = results[1_000_000]
        ok = r["validate_s"] <= TARGET_SECONDS and r["validate_gib"] <= TARGET_GIB
        print(f"target 1M persons <= {TARGET_SECONDS:.0f} s and <= {TARGET_GIB:.0f} GiB: "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
