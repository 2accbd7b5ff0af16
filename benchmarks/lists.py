"""Benchmark of the nightly `lists` stage alone, on a finished run folder (issue 19): the same function the
nightly job calls (pipelines.nightly._lists) on the run's tiers, features and canonical tables, with wall
and CPU seconds per part, the CPU of the forked workbook workers, and (optionally) the outputs compared
with another copy's, file by file (CSV bytes, every workbook's sheet names and cell values).

    .venv/bin/python benchmarks/lists.py RUN OUT [--unmanaged-beside] [--compare OTHER] [--profile FILE]

OUT gets lists/ and calls/ as the nightly writes them (OUT/canonical is a link to RUN/canonical); the
run folder itself is only read. The parts are those of timings.json `parts` (lists.priority,
lists.unmanaged, lists.calls, lists.csv_and_workbooks, lists.workload). On this shared 2-core machine,
compare the CPU columns: wall time follows the other users' load. With --unmanaged-beside the unmanaged
list is written before the clock starts and handed over as done, as the nightly's worker beside the tiers
stage does (the stage then is what timings.json's `lists` is); without, this process queries it in the stage.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = date(2024, 12, 31)  # the benchmark's as-of date (benchmarks/nightly.py)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_lists(
    run: Path, out: Path, xlsx: bool = True, profile: Path | None = None, unmanaged_beside: bool = False
) -> dict:
    from concurrent.futures import Future

    import pandas as pd

    from pipelines import nightly
    from risk.engines import open_engine
    from risk.run.folder import RunFolder
    from risk.tiers.rules import RuleTierClassifier

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "canonical").symlink_to((run / "canonical").resolve())
    folder = RunFolder(out)
    tiers = pd.read_parquet(run / "tiers.parquet")
    features = pd.read_parquet(run / "features.parquet")
    rule_set = RuleTierClassifier().fit(features.head(100)).rule_set_  # the workbook legend's labels
    tiered = nightly._Tiered(tiers, rule_set, {}, None)
    options = nightly.NightlyOptions(run, AS_OF, out, xlsx=xlsx)
    engine = open_engine("duckdb", folder.path)
    clock = nightly.StageClock()
    beside = None
    if unmanaged_beside:  # as the nightly's worker writes it while the tiers stage runs
        from risk.products.lists import UNMANAGED_CSV
        from risk.products.unmanaged import export_unmanaged

        folder.lists.mkdir(parents=True, exist_ok=True)
        beside = Future()
        beside.set_result(export_unmanaged(folder.canonical, AS_OF, folder.lists / UNMANAGED_CSV, threads=1))
    profiler = cProfile.Profile() if profile else None
    workers_before = _cpu_children()
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = nightly._lists(options, engine, folder, tiered, features, None, clock, beside)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(profile))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    workers = _cpu_children() - workers_before  # the pool is shut down (its workers reaped) by now
    return {
        "persons_tiered": len(tiers),
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "workers_cpu_seconds": round(workers, 2),
        "parts": clock.parts,
        "counts": result.counts,
    }


def digests(root: Path) -> dict[str, str]:
    """Every CSV's bytes and every workbook's sheet names and cell values under lists/ and calls/."""
    from tests.support.outputs import product_digests

    return product_digests(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished nightly run folder (read only)")
    parser.add_argument("out", type=Path, help="where lists/ and calls/ are written (replaced)")
    parser.add_argument("--compare", type=Path, help="another OUT to compare the outputs with")
    parser.add_argument("--profile", type=Path, help="cProfile of the main process to this file")
    parser.add_argument("--no-xlsx", action="store_true")
    parser.add_argument(
        "--unmanaged-beside",
        action="store_true",
        help="the unmanaged list written before the stage (as the nightly)",
    )
    args = parser.parse_args()
    os.environ.setdefault("RISK_ID_KEY", "benchmark-key")
    load = os.getloadavg()[0]
    figures = run_lists(
        args.run,
        args.out,
        xlsx=not args.no_xlsx,
        profile=args.profile,
        unmanaged_beside=args.unmanaged_beside,
    )
    figures["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    print(f"{'part':28s} {'wall s':>8s} {'CPU s':>8s}")
    for name, part in figures["parts"].items():
        print(f"{name:28s} {part['seconds']:8.2f} {part['cpu_seconds']:8.2f}")
    print(f"{'lists stage':28s} {figures['seconds']:8.2f} {figures['cpu_seconds']:8.2f}")
    print(f"{'workbook workers (CPU)':28s} {'':8s} {figures['workers_cpu_seconds']:8.2f}")
    total = figures["cpu_seconds"] + figures["workers_cpu_seconds"]
    print(f"{'all processes (CPU)':28s} {'':8s} {total:8.2f}")
    print(json.dumps({k: figures[k] for k in ("persons_tiered", "counts", "load_average")}))
    (args.out / "lists-benchmark.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if args.compare:
        mine, theirs = digests(args.out), digests(args.compare)
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        print(f"compared {len(mine)} files with {len(theirs)}: {len(differ)} differ {differ[:10]}")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
