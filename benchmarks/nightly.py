"""Benchmark of the nightly job end to end: time and peak memory per stage at 100k and 1M persons, on two
shapes of county, with references measured in the same run:

- `risk validate` / a plain DuckDB copy of the same input files to Parquet (benchmarks/validate.py
  REFERENCE), both whole processes;
- the feature stage (whole catalogue) / a plain hand-written DuckDB query for 16 core features over the
  same canonical Parquet files (benchmarks/features.py REFERENCE_SQL): in-process seconds, and whole
  processes as a user runs them (`risk features CANONICAL --out F` against `python -c` of the query);
- like for like, those 16 features computed through the feature definitions.

Shapes (issue 19): `own` is the project's synthetic county (`risk synth`); `other` is
benchmarks/other_county.py, a clean contract county the project did not make (1M persons: 150k managed,
30M BP readings, 10M labs, 5M encounters; --persons N gives scale N / 1M). The model was trained on the
default county, so both shapes run with --accept-model-drift (the model still scores everybody).

    .venv/bin/python benchmarks/nightly.py --shape own other --persons 100000 1000000 --home-bp-per-year 55

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


CPU: dict[str, float] = {}  # CPU seconds (user + system, all threads) of the last run() per command name


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process; its CPU seconds go to CPU[name]. On a shared,
    loaded machine CPU seconds move much less than wall seconds, so both are printed."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read() if proc.stderr else ''}")
    CPU[" ".join(cmd[:2])] = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def prepare(shape: str, persons: int, home_bp: float, work: Path) -> Path:
    if shape == "other":
        folder = work / f"input-other-{persons}"
        if not (folder / "_other_county.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            seconds, _ = run([sys.executable, str(ROOT / "benchmarks" / "other_county.py"),
                              "--out", str(folder), "--scale", str(persons / 1_000_000)])
            print(f"  generated the other-shape county of {persons:,} persons in {seconds:.0f} s", flush=True)
        return folder
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


def feature_child(mode: str, run_dir: Path, out: Path) -> tuple[float, float, float]:
    """(seconds inside, whole-process wall seconds, whole-process CPU seconds) of one benchmarks/features.py
    measurement on the run's canonical folder, own process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "features.py"), "--child", mode,
         "--canonical", str(run_dir / "canonical"), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"features.py --child {mode} failed")
    wall = time.perf_counter() - started
    inside = float(json.loads(output.strip().splitlines()[-1])["seconds"])
    return inside, wall, usage.ru_utime + usage.ru_stime


def copy_reference(folder: Path, work: Path) -> float:
    """Whole-process seconds of a plain DuckDB copy of the input files to Parquet (no checks)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from validate import REFERENCE

    target = work / "copy-reference"
    shutil.rmtree(target, ignore_errors=True)
    seconds, _ = run([sys.executable, "-c", REFERENCE, str(folder), str(target)])
    shutil.rmtree(target, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", choices=["own", "other"], default=["own", "other"])
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--home-bp-per-year", type=float, default=55.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/risk-bench-nightly"))
    parser.add_argument("--no-xlsx", action="store_true")
    args = parser.parse_args()
    # Synthetic counties only: validation refuses to run without a county ID key.
    os.environ.setdefault("RISK_ID_KEY", "benchmark-key")
    args.work.mkdir(parents=True, exist_ok=True)
    for shape in args.shape:
        for persons in args.persons:
            bench(shape, persons, args)


def bench(shape: str, persons: int, args: argparse.Namespace) -> None:
    folder = prepare(shape, persons, args.home_bp_per_year, args.work)
    load_before = os.getloadavg()
    run_dir = args.work / f"run-{shape}-{persons}"
    copy_seconds = copy_reference(folder, args.work)
    copy_cpu = CPU[f"{sys.executable} -c"]
    validate_wall, _ = run([RISK, "validate", str(folder), "--out", str(args.work / "validate-alone"),
                            "--as-of", AS_OF])
    validate_cpu = CPU[f"{RISK} validate"]
    shutil.rmtree(args.work / "validate-alone", ignore_errors=True)
    cmd = [RISK, "nightly", str(folder), "--as-of", AS_OF, "--out", str(run_dir)]
    if args.no_xlsx:
        cmd.append("--no-xlsx")
    # Neither benchmark county resembles the committed model's training population (the own one for its
    # stress-size home BP): the model scores everybody anyway, as in a real run with the flag.
    cmd.append("--accept-model-drift")
    wall, peak = run(cmd)
    nightly_cpu = CPU[f"{RISK} nightly"]
    timings = json.loads((run_dir / "timings.json").read_text())
    ref_seconds, ref_wall, ref_cpu = feature_child("reference", run_dir,
                                                   args.work / f"reference-{persons}.parquet")
    core_seconds, _, _ = feature_child("features_core", run_dir, args.work / f"core-{persons}.parquet")
    features_wall, _ = run([RISK, "features", str(run_dir), "--as-of", AS_OF,
                            "--out", str(args.work / f"features-{persons}.parquet")])
    features_cpu = CPU[f"{RISK} features"]
    manifest = json.loads((run_dir / "run.json").read_text())
    load_after = os.getloadavg()
    seconds = timings["seconds"]
    cpu = timings.get("cpu_seconds", {})
    print(f"\n{shape} shape, {persons:,} persons, {event_rows(folder) / 1e6:.1f}M event rows, "
          f"{manifest['counts']['tiered']:,} tiered; nightly wall {wall:.1f} s (CPU {nightly_cpu:.1f} s), "
          f"peak RSS {peak:,.0f} MiB; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print("  stage        seconds  CPU s  peak RSS so far (MiB)")
    for stage, stage_seconds in seconds.items():
        print(f"  {stage:10} {stage_seconds:9.2f} {cpu.get(stage, float('nan')):6.2f}  "
              f"{timings['peak_rss_mb'].get(stage, float('nan')):10,.0f}")
    print(f"  `risk validate` {validate_wall:.2f} s (CPU {validate_cpu:.2f}) / a plain DuckDB copy of the "
          f"input files {copy_seconds:.2f} s (CPU {copy_cpu:.2f}), whole processes: "
          f"{validate_wall / copy_seconds:.2f} (CPU {validate_cpu / copy_cpu:.2f})")
    print(f"  `risk features` (whole catalogue) {features_wall:.2f} s (CPU {features_cpu:.2f}) / the "
          f"hand-written 16-feature query {ref_wall:.2f} s (CPU {ref_cpu:.2f}), whole processes: "
          f"{features_wall / ref_wall:.2f} (CPU {features_cpu / ref_cpu:.2f})")
    print(f"  in process: feature stage {seconds['features']:.2f} s / query {ref_seconds:.2f} s = "
          f"{seconds['features'] / ref_seconds:.2f}; the same 16 features through the definitions "
          f"{core_seconds:.2f} s = {core_seconds / ref_seconds:.2f}")
    print("  JSON " + json.dumps({
        "shape": shape, "persons": persons, "event_rows": event_rows(folder), "wall": round(wall, 2),
        "cpu": round(nightly_cpu, 2), "peak_mib": round(peak), "stages": seconds, "stage_cpu": cpu,
        "copy_reference": [round(copy_seconds, 2), round(copy_cpu, 2)],
        "validate_process": [round(validate_wall, 2), round(validate_cpu, 2)],
        "feature_reference_process": [round(ref_wall, 2), round(ref_cpu, 2)],
        "features_process": [round(features_wall, 2), round(features_cpu, 2)],
        "feature_reference": round(ref_seconds, 2), "core": round(core_seconds, 2),
        "load": [round(load_before[0], 1), round(load_after[0], 1)]}), flush=True)

if __name__ == "__main__":
    main()
