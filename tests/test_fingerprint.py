"""Behaviour fingerprint: the small county's nightly run (rules + the committed model) must give the same
features, tiers, lists and run counts as the stored fingerprint taken before the run-folder refactor
(issue 13). Timestamps, paths and the code version are left out; every table is hashed by content.

Regenerate (only for an intended behaviour change, and say so in the commit):
    RISK_WRITE_FINGERPRINT=1 python -m pytest tests/test_fingerprint.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

STORED = Path(__file__).parent / "data" / "nightly_fingerprint.json"


def _frame_digest(frame: pd.DataFrame) -> str:
    text = f"{list(frame.columns)}\n{[str(t) for t in frame.dtypes]}\n" + frame.to_csv(index=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_fingerprint(run: Path) -> dict[str, str]:
    """Content hashes of the run's features, tiers, CSV lists and manifest counts."""
    prints = {
        "features.parquet": _frame_digest(pd.read_parquet(run / "features.parquet")),
        "tiers.parquet": _frame_digest(pd.read_parquet(run / "tiers.parquet")),
    }
    for path in sorted((run / "lists").rglob("*.csv")):
        prints[path.relative_to(run).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    # the code version (and the run fingerprint made from it) changes with every commit; the installed
    # libraries are recorded in run.json but are not behaviour
    from pipelines.run_record import LIBRARIES

    unstable = {"code", "run_fingerprint", "python", *LIBRARIES}
    versions = {k: v for k, v in manifest["versions"].items() if k not in unstable}
    kept = {key: manifest[key] for key in ("as_of", "validation", "counts", "by_township", "transitions")}
    kept["versions"] = versions
    prints["run.json"] = hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()
    return prints


def test_nightly_output_matches_the_stored_fingerprint(small_run: Path):
    current = run_fingerprint(small_run)
    if os.environ.get("RISK_WRITE_FINGERPRINT"):
        STORED.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    changed = sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))
    assert not changed, f"outputs differ from the stored fingerprint: {changed[:10]}"
