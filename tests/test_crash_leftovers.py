"""Crash leftovers (issue 12): hidden work folders of a killed run (they hold names and phones) are removed
by the next run of the same output; list-stage worker processes die with their parent, even on kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from risk.atomic import remove_leftovers
from tests.support.hostile_county import AS_OF, KNOWN_NAME, ROOT, write_hostile_county


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (reaped later by init) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _fake_leftovers(parent: Path, out_name: str, pid: int) -> list[Path]:
    paths = [
        parent / f".{out_name}.staging-{pid}",
        parent / f".{out_name}.retired-{pid}",
        parent / f"..{out_name}.staging-{pid}.validating-{pid}-ab12cd34",
    ]
    for path in paths:
        (path / "lists").mkdir(parents=True)
        (path / "lists" / "priority_all.csv").write_text(f"name\n{KNOWN_NAME}\n", encoding="utf-8")
    return paths


def test_the_next_run_removes_work_folders_of_a_killed_run(tmp_path: Path) -> None:
    from pipelines.nightly import NightlyOptions, run_nightly

    county = write_hostile_county(tmp_path / "input")
    out = tmp_path / "runs" / "run"
    out.parent.mkdir()
    dead = _fake_leftovers(out.parent, out.name, _dead_pid())
    running = _fake_leftovers(out.parent, out.name, os.getppid())  # a live process: not ours to remove
    other = _fake_leftovers(out.parent, "run-2", _dead_pid())  # another output's folders
    run_nightly(NightlyOptions(input_dir=county, as_of=AS_OF, out=out, use_model=False, xlsx=False))
    assert not [p for p in dead if p.exists()]
    assert all(p.exists() for p in running + other)
    assert sorted(remove_leftovers(out.parent / "run-2")) == sorted(other)


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time
    from risk.workers import process_pool
    pool = process_pool(2)
    futures = [pool.submit(time.sleep, 600) for _ in range(2)]
    time.sleep(0.5)
    print(" ".join(str(pid) for pid in pool._processes), flush=True)
    time.sleep(600)
""")


def test_worker_processes_die_with_their_parent_on_kill_9() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


@pytest.mark.slow
def test_kill_9_during_a_nightly_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    county = write_hostile_county(tmp_path / "input", persons=2000)
    out = tmp_path / "runs" / "run"
    command = [
        sys.executable,
        "-m",
        "risk.cli",
        "--dev-id-key",
        "nightly",
        str(county),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(out),
        "--no-model",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in child.stderr:  # kill it in the middle of the lists stage (workers running)
            if "lists ..." in line:
                break
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [p for p in out.parent.iterdir() if p.name.startswith(".")]  # it did leave work folders
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.parent.iterdir()] == ["run"]
