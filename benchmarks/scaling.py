"""Scaling benchmark: the nightly job on the embedded engine at 100k / 300k / 1M persons, and Spark
local[2] on the same data; time and peak memory per stage, cost per person, fitted growth exponent.

    .venv/bin/python benchmarks/scaling.py --persons 100000 300000 1000000 \
        --spark-persons 100000 300000 1000000 --json /tmp/risk-bench-scaling/figures.json

Data: `risk synth --persons N` (default seed), cached under --cache (default /tmp/risk-bench-scaling) and
reused when present. Each run is its own subprocess: `risk nightly RAW --as-of 2024-12-31 --no-model
--no-xlsx [--engine spark --spark-master local[2]]`. Seconds per stage come from RUN/timings.json. Peak
memory is sampled (psutil, every 0.2 s) over the whole process tree, so for Spark it includes the JVM and
the Python workers; timings.json's peak_rss_mb (the driver Python process only) is reported alongside.
The Spark session start-up is measured once on its own (a fixed cost, not a per-row one).
Writes a JSON file of all figures (--json) for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RISK = str(ROOT / ".venv" / "bin" / "risk")
AS_OF = "2024-12-31"
STAGES = ("validate", "features", "tiers", "lists", "report", "publish")


def tree_rss_mb(process: psutil.Process) -> float:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


def run_measured(command: list[str], log: Path) -> tuple[float, float]:
    """Wall seconds and peak whole-tree RSS (MB) of a command."""
    peak = 0.0
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        process = psutil.Process(child.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, tree_rss_mb(process))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        done.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(command)}; see {log}")
    return time.perf_counter() - started, peak


def county(cache: Path, persons: int) -> Path:
    raw = cache / f"county_{persons}"
    if not (raw / "persons.parquet").exists():
        print(f"synthesising {persons:,} persons -> {raw}", flush=True)
        subprocess.run([RISK, "synth", "--out", str(raw), "--persons", str(persons), "--overwrite"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return raw


def event_rows(raw: Path) -> int:
    meta = raw / "_synth" / "meta.json"
    if meta.exists():
        return int(sum(json.loads(meta.read_text())["rows"].values()))
    return 0


def nightly(cache: Path, raw: Path, persons: int, engine: str, master: str) -> dict:
    out = cache / "runs" / f"{engine}_{persons}"
    command = [RISK, "nightly", str(raw), "--as-of", AS_OF, "--out", str(out), "--no-model", "--no-xlsx"]
    if engine == "spark":
        command += ["--engine", "spark", "--spark-master", master]
    print(f"{engine} nightly, {persons:,} persons ...", flush=True)
    wall, peak = run_measured(command, cache / f"log_{engine}_{persons}.txt")
    timings = json.loads((out / "timings.json").read_text())
    manifest = json.loads((out / "run.json").read_text())
    return {"engine": engine, "persons": persons, "managed": manifest["counts"]["tiered"],
            "event_rows": event_rows(raw), "wall_s": round(wall, 1), "peak_tree_rss_mb": round(peak),
            "seconds": timings["seconds"], "driver_peak_rss_mb": timings["peak_rss_mb"]}


def spark_startup(cache: Path, master: str) -> float:
    code = ("import time; t=time.perf_counter(); from risk.engines.spark_session import get_spark; "
            f"s=get_spark({master!r}); s.range(1).count(); print(time.perf_counter()-t)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            check=True)
    return round(float(result.stdout.strip().splitlines()[-1]), 1)


def exponent(rows: list[dict], stage: str) -> float | None:
    """Least-squares slope of log(seconds) on log(persons): 1.0 = linear growth."""
    points = [(math.log(r["persons"]), math.log(r["seconds"][stage]))
              for r in rows if r["seconds"][stage] > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx, 2) if sxx else None


def render(results: list[dict], startup: float | None) -> str:
    lines = ["engine   persons  managed  " + "  ".join(f"{s:>9}" for s in STAGES[:4])
             + "   total_s  peak_tree_MB  us/person(feat+tiers)"]
    for r in results:
        s = r["seconds"]
        per = (s["features"] + s["tiers"]) / r["persons"] * 1e6
        lines.append(f"{r['engine']:7} {r['persons']:>8,} {r['managed']:>8,}  "
                     + "  ".join(f"{s[k]:>9.1f}" for k in STAGES[:4])
                     + f"  {sum(s.values()):>8.1f}  {r['peak_tree_rss_mb']:>12,}  {per:>10.1f}")
    for engine in ("duckdb", "spark"):
        rows = [r for r in results if r["engine"] == engine]
        if len(rows) >= 2:
            slopes = {stage: exponent(rows, stage) for stage in ("validate", "features", "tiers", "lists")}
            lines.append(f"{engine}: growth exponent of seconds vs persons (1 = linear): {slopes}")
    if startup is not None:
        lines.append(f"spark session start-up (local master, measured alone): {startup} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--spark-persons", type=int, nargs="*", default=None,
                        help="sizes also run on Spark (default: the same as --persons)")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/risk-bench-scaling"))
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    spark_sizes = args.persons if args.spark_persons is None else args.spark_persons
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for persons in sorted(set(args.persons) | set(spark_sizes)):
        raw = county(args.cache, persons)
        if persons in args.persons:
            results.append(nightly(args.cache, raw, persons, "duckdb", args.spark_master))
        if persons in spark_sizes:
            results.append(nightly(args.cache, raw, persons, "spark", args.spark_master))
        print(render(results, None), flush=True)
    startup = spark_startup(args.cache, args.spark_master) if spark_sizes else None
    results.sort(key=lambda r: (r["engine"], r["persons"]))
    report = render(results, startup)
    print(report)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "spark_startup_s": startup,
                                         "load_at_end": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()
