"""Benchmark of `risk train`: training-set build (features + labels at 5 as-of snapshots) and training of the
calibrated logistic regression and gradient boosting, plus the evaluation, at a reference size and the target
size, in the same run; prints time, peak memory and the ratio target / reference.

    .venv/bin/python benchmarks/train.py --persons 100000 1000000

Data: `risk synth` (history 2019-2024) + `risk validate`, generated once into --workdir and reused. Each
training measurement runs in its own subprocess; its peak RSS is that process's maxrss (os.wait4).
MLflow logging is off (it does not grow with the data); everything else is `risk train` as shipped, with
model_policy.yaml defaults (one OpenMP thread).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RISK = [sys.executable, "-m", "risk.cli"]

CHILD = """
import json, sys, time
from pathlib import Path
from pipelines.train import train_county
started = time.perf_counter()
result = train_county(Path(sys.argv[1]), Path(sys.argv[2]), snapshots=int(sys.argv[3]), track=False)
timings = dict(result.timings, total=time.perf_counter() - started)
overall = result.evaluation.overall.set_index("estimator")
print("RESULT " + json.dumps({"timings": timings, "n_train": result.summary["n_train"],
      "n_test": result.summary["n_test"], "auroc": overall["auroc"].round(3).to_dict()}))
"""


def run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def prepare(persons: int, workdir: Path) -> tuple[Path, dict[str, float]]:
    raw, validated = workdir / f"raw_{persons}", workdir / f"validated_{persons}"
    timings = {}
    if not (raw / "persons.parquet").exists():
        timings["synth"] = run(
            [
                *RISK,
                "synth",
                "--out",
                str(raw),
                "--persons",
                str(persons),
                "--start",
                "2019-01-01",
                "--end",
                "2024-12-31",
            ]
        )
    if not (validated / "canonical" / "persons.parquet").exists():
        timings["validate"] = run(
            [*RISK, "validate", str(raw), "--out", str(validated), "--as-of", "2025-01-01"]
        )
    return validated, timings


def measure(validated: Path, out: Path, snapshots: int) -> dict:
    log_path = out.parent / f"{out.name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(validated), str(out), str(snapshots)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if status != 0 or not lines:
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(f"training failed for {validated} (status {status}):\n" + "\n".join(tail))
    result = json.loads(lines[0].removeprefix("RESULT "))
    result["peak_rss_gib"] = usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--persons",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="sizes; the first is the reference",
    )
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/risk-bench-train"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for persons in args.persons:
        validated, prep = prepare(persons, args.workdir)
        result = measure(validated, args.workdir / f"train_{persons}", args.snapshots)
        rows.append((persons, prep, result))
        print(
            f"{persons:>9,} persons: prepared {json.dumps({k: round(v, 1) for k, v in prep.items()})}; "
            f"{json.dumps(result)}",
            flush=True,
        )

    print(
        "\npersons | person-snapshots train / test | training set s | fit LR s | fit HGB s | evaluate s | "
        "total s | peak RSS GiB"
    )
    for persons, _, r in rows:
        t = r["timings"]
        print(
            f"{persons:>9,} | {r['n_train']:,} / {r['n_test']:,} | {t['training_set']:.0f} | "
            f"{t['fit_logistic_regression']:.0f} | {t['fit_gradient_boosting']:.0f} | {t['evaluate']:.0f} | "
            f"{t['total']:.0f} | {r['peak_rss_gib']:.2f}"
        )
    if len(rows) > 1:
        (p0, _, r0), (p1, _, r1) = rows[0], rows[-1]
        print(
            f"\nratio {p1:,} / {p0:,} persons ({p1 / p0:.0f}x data): time "
            f"{r1['timings']['total'] / r0['timings']['total']:.1f}x, peak RSS "
            f"{r1['peak_rss_gib'] / r0['peak_rss_gib']:.1f}x"
        )


if __name__ == "__main__":
    main()
