"""Reproducible installs (issue 12): the approved model is package data, so a non-editable wheel install
scores with it. Builds the wheel, installs it into a fresh venv (the locked dependencies come from this
interpreter's site-packages, so nothing but the build backend is downloaded) and runs a small nightly
outside the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.hostile_county import AS_OF, ROOT, write_hostile_county


@pytest.mark.slow
def test_a_wheel_install_scores_with_the_approved_model(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", ".*_cache", "runs", "mlruns"
        ),
    )
    wheels = tmp_path / "wheels"
    # build isolation fetches only the build backend (setuptools, wheel) from the configured index
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(wheels.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "risk/models/approved/CURRENT" in names
    assert any(name.endswith("/model.joblib") for name in names)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the locked dependencies as this interpreter has them installed (appended after the venv's own
    # site-packages, so the wheel's `risk` comes first; their .pth files, e.g. an editable risk, are not read)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "locked-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    county = write_hostile_county(tmp_path / "input")
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RISK_DEV_ID_KEY"] = "1"
    done = subprocess.run(
        [
            str(venv / "bin" / "risk"),
            "nightly",
            str(county),
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(out),
            "--no-xlsx",
            "--accept-model-drift",  # a 300-resident county has too few patients for the drift check
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    located = subprocess.run(
        [str(python), "-c", "import risk; print(risk.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in located  # the installed package ran, not the source tree
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    current = (ROOT / "risk/models/approved/CURRENT").read_text(encoding="utf-8").strip()
    assert manifest["versions"]["model"] == current
    assert manifest["counts"]["tier_model"]
