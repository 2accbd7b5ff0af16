"""Saturation benchmark of the clinician patient lookup with `wrk` (a C load generator), side by side with a
bare reference endpoint on the same store (issue 19, part 3).

    .venv/bin/python benchmarks/serving_wrk.py --persons 100000 --workers 2 --pg-url "$RISK_TEST_PG_URL"

For each backend (SQLite file; PostgreSQL database `--pg-database`, created if missing): a seeded demo run
of N persons is published, then two servers start side by side with the same server (uvicorn; with W > 1
uvicorn workers under gunicorn with one SO_REUSEPORT socket per worker, `risk.serving.workers`), the same
number of worker processes, threads, pooled connections and access logging (to a file):
- `risk serve --workers W`: GET /api/patients/{id} with a county administrator's bearer token (token check,
  scope, the patient view with its tier history, one audit row per read, committed before the answer);
- the bare reference (`bare_app` below): a FastAPI endpoint reading the same patient row by primary key
  through the same store engine and returning it as JSON, with no authentication, history or audit.
wrk drives each with C connections (50) from 2 threads for D seconds, random patient IDs (a Lua script), in
R rounds, lookup first in odd rounds and bare first in even ones so drift of the machine's load hits both
alike; it reports requests/s and p50 / p99 latency (--latency). The ratio is lookup requests/s / bare
requests/s in the same round, and the median over the rounds. wrk runs on the same 2 cores as the servers.
The load average is printed before and after each round (other work on the machine shows there). Because
requests/s move with whatever else the machine runs, each run also reports the servers' CPU time per
completed request (user + system time of the server's processes from /proc/<pid>/stat, before and after the
wrk run, divided by the requests): that figure hardly depends on the load, and lookup / bare CPU per request
is what the throughput ratio would be on an idle, CPU-bound machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_STORE_ENV = "RISK_BENCH_BARE_STORE"

LUA = r"""
local n, prefix, token
function init(args)
  n = tonumber(args[1]); prefix = args[2]; token = args[3]
  local id = tonumber(string.sub(tostring({}), 8), 16) or 0
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000) + id)
end
function request()
  return wrk.format("GET", prefix .. string.format("P%07d", math.random(0, n - 1)),
                    {["Authorization"] = "Bearer " .. token})
end
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def bare_app():  # noqa: ANN201 - uvicorn factory: `uvicorn serving_wrk:bare_app --factory`
    """The reference: one primary-key read of the patient row through the same store engine, JSON out."""
    from contextlib import asynccontextmanager

    import anyio.to_thread
    from fastapi import FastAPI, HTTPException
    from sqlalchemy import select

    from risk.serving import api, schema
    from risk.serving.store import open_store

    # the same engine settings, threads and pooled connections per process as `risk serve`; a checkout from
    # before issue 19 has no SERVING_THREADS and ran AnyIO's default threads over a pool of 8
    threads = getattr(api, "SERVING_THREADS", None)
    engine = open_store(os.environ[BARE_STORE_ENV], **({"pool_size": threads + 2} if threads else {}))
    with engine.connect() as conn:
        run_id = conn.execute(select(schema.current_run.c.run_id)).scalar_one()
    patients = schema.patients

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        if threads:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/{person_id}")
    def bare(person_id: str) -> dict:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    select(patients).where(patients.c.run_id == run_id, patients.c.person_id == person_id)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise HTTPException(status_code=404)
        return dict(row)

    return app


def serve_bare(port: int, workers: int) -> None:
    """Start the bare reference exactly as `risk serve` starts the lookup: one uvicorn process for 1 worker,
    else uvicorn workers under gunicorn with a socket per worker (an older checkout without
    risk.serving.workers falls back to uvicorn's own multi-process mode, as its `risk serve` did)."""
    import uvicorn

    if workers == 1:
        app = bare_app()
        try:  # as `risk serve` does for its app (an older checkout has no settle_heap)
            from risk.serving.workers import settle_heap

            settle_heap()
        except ImportError:
            pass
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", timeout_keep_alive=30)
        return
    try:
        from risk.serving.workers import run_workers
    except ImportError:
        uvicorn.run(
            "serving_wrk:bare_app",
            factory=True,
            workers=workers,
            host="127.0.0.1",
            port=port,
            log_level="info",
            timeout_keep_alive=30,
        )
        return
    run_workers(bare_app, host="127.0.0.1", port=port, workers=workers)


def wait_up(url: str, server: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"server did not start; see {log}")


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
    )


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the process group (the uvicorn supervisor and its
    worker processes), from /proc/<pid>/stat: load-independent, unlike requests/s on a shared machine."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is field 5, utime 14, stime 15 of stat
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def wrk(
    url: str,
    prefix: str,
    persons: int,
    token: str,
    lua: Path,
    args: argparse.Namespace,
    duration: float,
    server: subprocess.Popen | None = None,
) -> dict:
    cpu_before = group_cpu_seconds(server.pid) if server else None
    out = subprocess.run(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{duration:g}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
            "--",
            str(persons),
            prefix,
            token,
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    out = out.stdout
    line = next(raw for raw in out.splitlines() if raw.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if server is not None and result["requests"]:
        # server CPU per completed request (requests still in flight when wrk stops add a little)
        result["cpu_us_per_req"] = (group_cpu_seconds(server.pid) - cpu_before) * 1e6 / result["requests"]
    return result


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench_backend(name: str, store: str, run: Path, args: argparse.Namespace, lua: Path) -> list[dict]:
    import secrets

    from risk.serving.auth import add_user
    from risk.serving.publish import publish_run
    from risk.serving.store import open_store

    started = time.perf_counter()
    published = publish_run(run, store)
    print(f"{name}: {published.render()} ({time.perf_counter() - started:.1f} s)", flush=True)
    engine = open_store(store)
    token = add_user(engine, f"bench-admin-{secrets.token_hex(3)}", "county_admin")
    engine.dispose()

    env = {**os.environ, BARE_STORE_ENV: store, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}"}
    work = Path(args.work)
    lookup_port, bare_port = args.port, args.port + 1
    servers = [
        start(
            [
                sys.executable,
                "-m",
                "risk.cli",
                "serve",
                "--store",
                store,
                "--port",
                str(lookup_port),
                "--workers",
                str(args.workers),
            ],
            env,
            work / f"serve-{name}.log",
        ),
        start(
            [
                sys.executable,
                "-c",
                f"import serving_wrk; serving_wrk.serve_bare({bare_port}, {args.workers})",
            ],
            env,
            work / f"bare-{name}.log",
        ),
    ]
    results = []
    try:
        wait_up(f"http://127.0.0.1:{lookup_port}/api/health", servers[0], work / f"serve-{name}.log")
        wait_up(f"http://127.0.0.1:{bare_port}/bare/P0000000", servers[1], work / f"bare-{name}.log")
        targets = {
            "lookup": (f"http://127.0.0.1:{lookup_port}", "/api/patients/", servers[0]),
            "bare": (f"http://127.0.0.1:{bare_port}", "/bare/", servers[1]),
        }
        for url, prefix, _ in targets.values():  # warm caches and connection pools
            wrk(url, prefix, args.persons, token, lua, args, 2)
        for round_no in range(1, args.rounds + 1):
            row = {"backend": name, "round": round_no, "load_before": loadavg()}
            order = list(targets) if round_no % 2 else list(reversed(targets))  # ABAB... -> AB BA AB
            for kind in order:
                url, prefix, server = targets[kind]
                row[kind] = wrk(url, prefix, args.persons, token, lua, args, args.duration, server)
            row["load_after"] = loadavg()
            row["ratio"] = row["lookup"]["rps"] / row["bare"]["rps"]
            row["cpu_ratio"] = row["lookup"]["cpu_us_per_req"] / row["bare"]["cpu_us_per_req"]
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for server in servers:
            stop(server)
    return results


def pg_store(base_url: str, database: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first():
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both servers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=os.environ.get("RISK_TEST_PG_URL"))
    parser.add_argument("--pg-database", default="risk_bench19")
    parser.add_argument("--work", default="/tmp/serving-wrk")
    parser.add_argument("--port", type=int, default=8781)
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo run and the SQLite store")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    os.environ.setdefault("RISK_ID_KEY", "serving-wrk-benchmark-key")
    import warnings

    warnings.filterwarnings("ignore", message="RISK_ID_KEY")
    from risk.serving.demo import write_demo_run

    work = Path(args.work)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    lua = work / "lookup.lua"
    lua.write_text(LUA)
    run = work / f"run-{args.persons}"
    if not (run / "run.json").exists():
        write_demo_run(
            run, persons=args.persons, seed=20261125, townships=18, teams_per_township=13, readings=6
        )
    print(f"load average at start: {loadavg()}", flush=True)
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            store = str(work / f"store-{args.persons}.db")
        elif args.pg_url:
            store = pg_store(args.pg_url, args.pg_database)
        else:
            print("postgres: skipped (no --pg-url / RISK_TEST_PG_URL)")
            continue
        results += bench_backend(backend, store, run, args, lua)
    print(
        f"\n{args.persons:,} persons, {args.workers} worker processes each, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s, random patients; load average at end: {loadavg()}"
    )
    print(
        f"{'backend':9} {'round':>5} {'lookup req/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'bare req/s':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} {'CPU µs/req lookup':>17} {'bare':>5} {'non-2xx':>7}  "
        "load before → after"
    )
    for r in results:
        lk, bare = r["lookup"], r["bare"]
        print(
            f"{r['backend']:9} {r['round']:5d} {lk['rps']:12.0f} {lk['p50_us'] / 1000:7.1f} "
            f"{lk['p99_us'] / 1000:7.1f} {bare['rps']:10.0f} {bare['p50_us'] / 1000:7.1f} "
            f"{bare['p99_us'] / 1000:7.1f} {r['ratio']:6.2f} {lk['cpu_us_per_req']:17.0f} "
            f"{bare['cpu_us_per_req']:5.0f} {lk['non_2xx'] + bare['non_2xx']:7d}  "
            f"{r['load_before']} → {r['load_after']}"
        )
    for backend in dict.fromkeys(r["backend"] for r in results):
        ratios = sorted(r["ratio"] for r in results if r["backend"] == backend)
        print(
            f"{backend}: lookup / bare requests/s per round {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"median {statistics.median(ratios):.2f}"
        )
        cpu = sorted(r["cpu_ratio"] for r in results if r["backend"] == backend)
        print(
            f"{backend}: server CPU per request, lookup / bare, per round "
            f"{', '.join(f'{x:.2f}' for x in cpu)}; "
            f"median {statistics.median(cpu):.2f} (bare throughput / lookup throughput if CPU-bound)"
        )
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
