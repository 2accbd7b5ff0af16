"""Benchmark of the nightly job end to end: time and peak memory per stage at 100k and 1M persons, and the
ratio of the feature stage to a plain hand-written DuckDB query for 16 core features over the same
canonical Parquet files, measured in the same run (and, like for like, of those 16 features computed
through the feature definitions, as in benchmarks/features.py).

    .venv/bin/python benchmarks/nightly.py --persons 100000 1000000 --home-bp-per-year 55

`--home-bp-per-year 55` is the stress size of issue 3 (~46M event rows at 1M persons: long history and
home BP readings). Inputs are cached under --work. The nightly job runs in its own process (`risk nightly`)
and writes RUN/timings.json (seconds per stage, process peak RSS after each stage); the whole process's
peak RSS comes from wait4. The reference query is benchmarks/features.py's REFERENCE_SQL, run in its own
process on the run's canonical folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RISK = str(Path(sys.executable).with_name("risk"))
AS_OF = "2024-12-31"


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read() if proc.stderr else ''}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def prepare(persons: int, home_bp: float, work: Path) -> Path:
    folder = work / f"input-{persons}-{home_bp:g}"
    if not (folder / "persons.parquet").exists():
        shutil.rmtree(folder, ignore_errors=True)
        seconds, _ = run([RISK, "synth", "--persons", str(persons), "--home-bp-per-year", str(home_bp),
                          "--out", str(folder)])
        print(f"  synthesised {persons:,} persons in {seconds:.0f} s", flush=True)
    return folder


def event_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet") if p.stem != "persons")


def feature_child(mode: str, run_dir: Path, out: Path) -> float:
    """Seconds of one benchmarks/features.py measurement on the run's canonical folder, own process."""
    child = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "features.py"), "--child", mode,
         "--canonical", str(run_dir / "canonical"), "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    return float(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--home-bp-per-year", type=float, default=55.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/risk-bench-nightly"))
    parser.add_argument("--no-xlsx", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for persons in args.persons:
        folder = prepare(persons, args.home_bp_per_year, args.work)
        run_dir = args.work / f"run-{persons}"
        cmd = [RISK, "nightly", str(folder), "--as-of", AS_OF, "--out", str(run_dir)]
        if args.no_xlsx:
            cmd.append("--no-xlsx")
        wall, peak = run(cmd)
        timings = json.loads((run_dir / "timings.json").read_text())
        ref_seconds = feature_child("reference", run_dir, args.work / f"reference-{persons}.parquet")
        core_seconds = feature_child("features_core", run_dir, args.work / f"core-{persons}.parquet")
        manifest = json.loads((run_dir / "run.json").read_text())
        print(f"\n{persons:,} persons, {event_rows(folder) / 1e6:.1f}M event rows, "
              f"{manifest['counts']['tiered']:,} tiered; nightly wall {wall:.1f} s, peak RSS {peak:,.0f} MiB")
        print("  stage        seconds  peak RSS so far (MiB)")
        for stage, seconds in timings["seconds"].items():
            print(f"  {stage:10} {seconds:9.2f}  {timings['peak_rss_mb'].get(stage, float('nan')):10,.0f}")
        ratio = timings["seconds"]["features"] / ref_seconds
        print(f"  hand-written 16-feature DuckDB query: {ref_seconds:.2f} s; "
              f"feature stage (whole catalogue) / reference = {ratio:.2f}")
        print(f"  the same 16 features through the definitions: {core_seconds:.2f} s; "
              f"/ reference = {core_seconds / ref_seconds:.2f}")


if __name__ == "__main__":
    main()
