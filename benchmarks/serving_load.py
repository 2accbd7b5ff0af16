"""Load benchmark of the clinician lookup: a store holding N persons (1M by default), `risk serve` in its own
process on loopback, C concurrent HTTP clients (50 by default) sending a bounded number of requests; p50 /
p99 latency and throughput for lookup and search, on SQLite and PostgreSQL. Publish time is measured too.

    .venv/bin/python benchmarks/serving_load.py --persons 1000000 --pg-url "$RISK_TEST_PG_URL"

Reference, same run: the same lookups and searches as direct calls of the query functions on the store
(one thread, no HTTP, no auth, no audit write); the ratio HTTP p50 / reference p50 is the cost of the service
layer. Data: the seeded demo run writer (`risk.serving.demo`), 18 townships x 13 teams (~4,300 patients per
team at 1M), 6 BP readings per person. Peak RSS: this process (ru_maxrss) and the server (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

from risk.serving import queries
from risk.serving.auth import User, add_user
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

warnings.filterwarnings("ignore", message="RISK_ID_KEY")
ROOT = Path(__file__).resolve().parent.parent


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "max_ms": float(values.max())}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reference(store: str, lookup_ids: list[str], search_jobs: list[tuple[User, str]]) -> dict:
    engine = open_store(store)
    admin = User("bench-admin", "county_admin")
    timings: dict[str, list[float]] = {"lookup": [], "search": []}
    for pid in lookup_ids:
        start = time.perf_counter()
        with engine.begin() as conn:
            queries.patient_view(conn, admin, pid)
        timings["lookup"].append(time.perf_counter() - start)
    for user, query in search_jobs:
        start = time.perf_counter()
        with engine.begin() as conn:
            queries.search(conn, user, query)
        timings["search"].append(time.perf_counter() - start)
    engine.dispose()
    return {kind: percentiles(values) for kind, values in timings.items()}


async def load(base: str, requests: list[tuple[str, str, dict | None, str]], concurrency: int,
               rate: float | None = None) -> dict:
    """Send every request once with `concurrency` clients; latency per request measured client-side.
    Without `rate` each client sends its next request as soon as it has an answer (saturation); with
    `rate` requests are released at that many per second in total (an open-loop clinic-like load)."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    failures: dict[int | str, int] = {}
    sent = {"n": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker() -> None:
            while not queue.empty():
                method, path, body, token = queue.get_nowait()
                if rate:
                    due = started + sent["n"] / rate
                    sent["n"] += 1
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                start = time.perf_counter()
                for attempt in range(2):  # one retry: a keep-alive connection closed under our feet
                    try:
                        response = await client.request(method, path, json=body,
                                                        headers={"Authorization": f"Bearer {token}"})
                        break
                    except httpx.TransportError:
                        failures["transport_retry"] = failures.get("transport_retry", 0) + 1
                        if attempt:
                            raise
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures[response.status_code] = failures.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {**percentiles(latencies), "requests": len(latencies), "throughput_rps": len(latencies) / wall,
            "non_200": failures}


def start_server(store: str, port: int, log_path: Path, workers: int = 1) -> subprocess.Popen:
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "risk.cli", "serve", "--store", store, "--port", str(port),
         "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"server did not start; see {log_path}")


def bench_backend(name: str, store: str, run: Path, persons: pd.DataFrame, args: argparse.Namespace,
                  port: int) -> dict:
    result: dict = {"backend": name}
    started = time.perf_counter()
    published = publish_run(run, store)
    result["publish_s"] = time.perf_counter() - started
    result["persons"] = published.persons
    result["search_terms"] = published.search_terms
    result["publish_reused"] = published.already_published
    print(f"{name}: {published.render()}", flush=True)
    engine = open_store(store)
    team_id = persons["team_id"].iloc[0]
    admin_token = add_user(engine, f"bench-admin-{secrets.token_hex(3)}", "county_admin")
    team_token = add_user(engine, f"bench-team-{secrets.token_hex(3)}", "team", team_id=team_id)
    engine.dispose()

    rng = np.random.default_rng(7)
    lookup_ids = list(rng.choice(persons["person_id"].to_numpy(), args.lookups))
    team = persons[persons["team_id"] == team_id]
    team_user = User("bench-team", "team", team_id=team_id)
    admin_user = User("bench-admin", "county_admin")
    search_jobs: list[tuple[User, str, str]] = []
    for i in range(args.searches):
        if i % 2 == 0:  # a team member searching a patient of theirs by name
            search_jobs.append((team_user, str(team["name"].iloc[rng.integers(len(team))]), team_token))
        else:  # county-wide: first 7 digits of a phone number
            search_jobs.append((admin_user, str(persons["phone"].iloc[rng.integers(len(persons))])[:7],
                                admin_token))

    server = start_server(store, port, Path(args.work) / f"server-{name}.log", args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        warm = [("GET", f"/api/patients/{pid}", None, admin_token) for pid in lookup_ids[:200]]
        asyncio.run(load(base, warm, args.concurrency))
        result["reference"] = reference(store, lookup_ids[:1000],
                                        [(u, q) for u, q, _ in search_jobs[:400]])
        lookups = [("GET", f"/api/patients/{pid}", None, admin_token) for pid in lookup_ids]
        result["lookup"] = asyncio.run(load(base, lookups, args.concurrency))
        searches = [("POST", "/api/search", {"q": q}, token) for _, q, token in search_jobs]
        result["search"] = asyncio.run(load(base, searches, args.concurrency))
        if args.rate:
            paced = lookups[: int(args.rate * 20)]
            result["lookup_paced"] = asyncio.run(load(base, paced, args.concurrency, rate=args.rate))
        result["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for kind in ("lookup", "search"):
        ratio = result[kind]["p50_ms"] / result["reference"][kind]["p50_ms"]
        result[f"{kind}_p50_ratio_vs_reference"] = ratio
    return result


def pg_store(base_url: str, keep: bool = False) -> str:
    engine = create_engine(base_url)
    with engine.begin() as conn:
        if not keep:
            conn.execute(text("DROP SCHEMA IF EXISTS serving_bench CASCADE"))
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS serving_bench"))
    engine.dispose()
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3Dserving_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--pg-url", default=os.environ.get("RISK_TEST_PG_URL"))
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--work", default="/tmp/serving-bench")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=1, help="risk serve --workers")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="Also send 20 s of lookups at this total rate per second (0: skip)")
    parser.add_argument("--reuse", action="store_true",
                        help="Keep the demo run and stores of an earlier run (publish is then a no-op)")
    args = parser.parse_args()
    work = Path(args.work)
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    run = work / "run"
    if not (args.reuse and (run / "run.json").exists()):
        write_demo_run(run, persons=args.persons, seed=20261125, townships=18, teams_per_township=13,
                       readings=6)
    demo_s = time.perf_counter() - started
    persons = pd.read_parquet(run / "canonical" / "persons.parquet",
                              columns=["person_id", "team_id", "name", "phone"])
    print(f"demo run: {args.persons:,} persons written in {demo_s:.1f} s", flush=True)

    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            store = str(work / "store.db")
        elif args.pg_url:
            store = pg_store(args.pg_url, keep=args.reuse)
        else:
            print("postgres: skipped (no --pg-url / RISK_TEST_PG_URL)")
            continue
        result = bench_backend(backend, store, run, persons, args, args.port)
        results.append(result)
        print(json.dumps(result, indent=2, default=str), flush=True)

    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.persons:,} persons, {args.concurrency} concurrent clients, loopback; "
          f"benchmark process peak RSS {own_peak:.0f} MB")
    header = (f"{'backend':9} {'kind':7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} "
              f"{'ref p50':>8} {'ratio':>6} {'publish s':>9} {'srv RSS MB':>10}")
    print(header)
    for r in results:
        for kind in ("lookup", "search"):
            row = r[kind]
            print(f"{r['backend']:9} {kind:7} {row['requests']:5d} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
                  f"{row['throughput_rps']:7.0f} {r['reference'][kind]['p50_ms']:8.2f} "
                  f"{r[f'{kind}_p50_ratio_vs_reference']:6.1f} {r['publish_s']:9.1f} "
                  f"{r['server_peak_rss_mb']:10.0f}")
        if "lookup_paced" in r:
            row = r["lookup_paced"]
            print(f"{r['backend']:9} paced   {row['requests']:5d} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
                  f"{row['throughput_rps']:7.0f}  (lookups released at {args.rate:.0f}/s)")
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
