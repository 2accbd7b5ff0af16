"""Behaviour fingerprint on the benchmark county of the other shape (issue 19): the nightly run over a small
`benchmarks/other_county.py` county must give the same features, tiers, priority/unmanaged/call lists,
workbook cells and run counts before and after each speed-up. The speed work of issue 19 optimises the
validate, features, tiers and lists stages on this shape, so it is pinned here, beside the own county's
fingerprint (tests/test_fingerprint.py).

Regenerate (only for an intended behaviour change, and say so in the commit):
    RISK_WRITE_FINGERPRINT=1 python -m pytest tests/test_fingerprint_other_shape.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.support.outputs import product_digests
from tests.test_fingerprint import run_fingerprint

ROOT = Path(__file__).resolve().parent.parent
STORED = Path(__file__).parent / "data" / "nightly_fingerprint_other_shape.json"
AS_OF = date(2024, 12, 31)  # the benchmark's as-of date (benchmarks/nightly.py)
SCALE = "0.01"  # 10,000 persons, 1,500 managed


def full_fingerprint(run: Path) -> dict[str, str]:
    """The own county's fingerprint plus every call-list CSV and every workbook's cells."""
    return {**run_fingerprint(run), **product_digests(run)}


@pytest.fixture(scope="module")
def other_shape_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.nightly import NightlyOptions, run_nightly

    folder = tmp_path_factory.mktemp("other-shape")
    county = folder / "county"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/other_county.py"), "--out", str(county), "--scale", SCALE],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    out = folder / "run"
    # the benchmark county does not resemble the model's training population (benchmarks/nightly.py)
    run_nightly(NightlyOptions(county, AS_OF, out, xlsx=True, accept_model_drift=True))
    return out


@pytest.mark.slow
def test_other_shape_outputs_match_the_stored_fingerprint(other_shape_run: Path):
    current = full_fingerprint(other_shape_run)
    assert any(key.startswith("calls/") for key in current), "the run wrote no call lists"
    assert any(key.endswith(".xlsx") for key in current), "the run wrote no workbooks"
    if os.environ.get("RISK_WRITE_FINGERPRINT"):
        STORED.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    changed = sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))
    assert not changed, f"outputs differ from the stored fingerprint: {changed[:10]} ({len(changed)} in all)"


@pytest.mark.slow
def test_the_county_overview_and_every_indicator_report_run_on_the_other_shape(
    other_shape_run: Path, tmp_path: Path
) -> None:
    """Reports on a county we did not make: the overview (with capitation) died here with a traceback when
    the expected-spend model met a feature column no patient has; every indicator report by township too."""
    from risk.indicators.definitions import indicator_set
    from risk.indicators.overview import build_overview
    from risk.indicators.report import write_indicator_report

    page = build_overview(other_shape_run, tmp_path / "overview.html", period="2024Q4")
    html = page.read_text(encoding="utf-8")
    assert "5. 指标定义与来源" in html and "小包干" in html
    for indicator in indicator_set().indicators:
        out = write_indicator_report(other_shape_run, indicator, "2024Q4", tmp_path / f"{indicator}.xlsx")
        assert out.stat().st_size > 0, indicator
