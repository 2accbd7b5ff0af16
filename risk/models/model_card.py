"""The model card written next to an exported model: intended use, data, metrics, limits, subgroup results."""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
import pandas as pd

from risk.formatting import fmt, pct

TEMPLATE = "model_card.md.j2"



def render_model_card(
    metadata: dict[str, Any], overall: pd.DataFrame, subgroups: pd.DataFrame, closing_note: list[str]
) -> str:
    template = jinja2.Template(
        resources.files("risk.models").joinpath(TEMPLATE).read_text(encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    mine = subgroups[subgroups["estimator"] == metadata["model_kind"]] if not subgroups.empty else subgroups
    records = [{"auroc": float("nan"), **r} for r in mine.to_dict("records")]
    overall_records = [
        {"brier": float("nan"), "calibration_slope": float("nan"), **r} for r in overall.to_dict("records")
    ]
    return template.render(
        m=metadata, overall=overall_records, subgroups=records, closing=closing_note, fmt=fmt, pct=pct
    )
