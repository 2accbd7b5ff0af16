"""Benchmark of the follow-up loop: importing N call-result rows (100k by default, target <= 10 s) into a
store holding a published run, and the call-list stage (priority list -> call lists with the results so far
-> CSV; workbooks off) on a run folder.

    .venv/bin/python benchmarks/calls.py --persons 100000 --rows 100000 --out /tmp/calls-bench
    .venv/bin/python benchmarks/calls.py --run runs/2024-12-31 --rows 100000   # call-list stage on a real run

Data: the seeded demo run writer (`risk.serving.demo`) for the import; result rows mix codes, Chinese and
English labels and bare removal reasons, 1% invalid. The call-list stage on a 1M run: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.calls import run_calls
from risk.serving.call_results import import_results_file, results_frame
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

warnings.filterwarnings("ignore", message="RISK_ID_KEY")
RESULTS = [
    "agreed_to_visit",
    "同意来诊",
    "Remind to call later",
    "稍后再打",
    "already_visited",
    "dead",
    "moved",
    "not_responding",
    "移出名单",
    "visited",
]


def result_rows(person_ids: np.ndarray, rows: int, as_of: date, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(person_ids), rows)
    kind = np.array(RESULTS, dtype=object)[rng.integers(0, len(RESULTS), rows)]
    called = [(as_of + timedelta(days=int(d))).isoformat() for d in rng.integers(1, 10, rows)]
    frame = pd.DataFrame(
        {
            "result_id": [f"b-{i}" for i in range(rows)],
            "person_id": person_ids[pick],
            "result": kind,
            "called_on": called,
        }
    )
    frame["visit_on"] = np.where(
        np.isin(kind, ["agreed_to_visit", "同意来诊"]), (as_of + timedelta(days=12)).isoformat(), ""
    )
    frame["remove_reason"] = np.where(kind == "移出名单", "refused", "")
    frame["sbp"] = np.where(kind == "visited", "132", "")
    frame["dbp"] = np.where(kind == "visited", "84", "")
    bad = rng.random(rows) < 0.01
    frame.loc[bad, "result"] = "??"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--run", type=Path, default=None, help="a nightly run folder for the call-list stage")
    parser.add_argument("--out", type=Path, default=Path("/tmp/calls-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    as_of = date(2024, 12, 31)
    figures: dict[str, float | int] = {"persons": args.persons, "rows": args.rows}
    demo = write_demo_run(
        args.out / "demo",
        persons=args.persons,
        seed=1,
        as_of=as_of,
        run_id="bench",
        townships=18,
        teams_per_township=13,
        readings=2,
    )
    store = str(args.out / "store.db")
    started = time.perf_counter()
    publish_run(demo, store)
    figures["publish_s"] = round(time.perf_counter() - started, 2)
    person_ids = pd.read_parquet(demo / "tiers.parquet", columns=["person_id"])["person_id"].to_numpy()
    path = args.out / "results.csv"
    result_rows(person_ids, args.rows, as_of).to_csv(path, index=False, encoding="utf-8-sig")
    outcome = import_results_file(path, store, today=as_of + timedelta(days=10))
    figures.update(
        import_s=round(outcome.seconds, 2),
        accepted=outcome.accepted,
        quarantined=outcome.quarantined,
        duplicates=outcome.duplicates,
    )
    again = import_results_file(path, store, today=as_of + timedelta(days=10))
    figures["reimport_s"] = round(again.seconds, 2)
    if args.run is not None:
        engine = open_store(store)
        results = results_frame(engine, as_of + timedelta(days=10))
        engine.dispose()
        manifest = json.loads((args.run / "run.json").read_text(encoding="utf-8"))
        on = date.fromisoformat(manifest["as_of"])
        results["called_on"] = results["called_on"].map(lambda _: on)  # the demo ids are not the run's
        started = time.perf_counter()
        calls = run_calls(args.run, on, args.out / "calls", results=results, xlsx=False)
        figures["call_list_stage_s"] = round(time.perf_counter() - started, 2)
        figures.update({f"call_list_{k}": v for k, v in calls.counts().items()})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
