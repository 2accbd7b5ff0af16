"""The analyst notebook runs top to bottom on the shared small synthetic run (tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes a whole notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analyst_walkthrough.ipynb"


def test_analyst_walkthrough_executes(small_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("RISK_RUN_DIR", str(small_run))
    monkeypatch.setenv("RISK_PERIOD", "2024Q2")  # the small run is as of 2024-06-30
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(small_run)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "bp_control_hearts" in text and "townships are clearly below" in text
    assert os.environ["RISK_RUN_DIR"] == str(small_run)
