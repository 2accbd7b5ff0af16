"""External validation: the same fitted estimators judged on the development data's held-out rows
(internal) and on another population (external), side by side, as OHDSI PatientLevelPrediction reports it
(Reps JM et al., JAMIA 2018;25:969): discrimination (AUROC, AUPRC with bootstrap CIs),
calibration-in-the-large (intercept with logit p as offset; 0 is perfect), calibration slope (1 is perfect),
Brier score.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from risk.evaluation.harness import EvaluationResult
from risk.spreadsheet import write_csv

COLUMNS = [
    "validation",
    "estimator",
    "n",
    "events",
    "auroc",
    "auroc_low",
    "auroc_high",
    "auprc",
    "auprc_low",
    "auprc_high",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "mean_predicted",
]


def validation_table(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """One row per (validation setting, estimator), settings in the order given (e.g. internal, external)."""
    frames = []
    for setting, result in results.items():
        frame = result.overall.copy()
        frame.insert(0, "validation", setting)
        frames.append(frame.reindex(columns=COLUMNS))
    return pd.concat(frames, ignore_index=True)


def render_markdown(table: pd.DataFrame, title: str, context: dict[str, str] | None = None) -> str:
    lines = [f"# {title}", ""]
    for key, value in (context or {}).items():
        lines.append(f"- {key}: {value}")
    if context:
        lines.append("")
    lines += [
        "| validation | estimator | n | events | AUROC (95 % CI) | AUPRC (95 % CI) | Brier | "
        "calibration-in-the-large | calibration slope |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['validation']} | {r['estimator']} | {int(r['n']):,} | {int(r['events']):,} | "
            f"{r['auroc']:.3f} ({r['auroc_low']:.3f}-{r['auroc_high']:.3f}) | "
            f"{r['auprc']:.3f} ({r['auprc_low']:.3f}-{r['auprc_high']:.3f}) | {r['brier']:.4f} | "
            f"{r['calibration_intercept']:+.2f} | {r['calibration_slope']:.2f} |"
        )
    lines += [
        "",
        "Calibration-in-the-large is the intercept of a logistic recalibration with the predicted log-odds "
        "as offset (0 = predicted and observed rates agree; > 0 = the estimator under-predicts); the slope "
        "is the coefficient of the predicted log-odds (1 = right spread; < 1 = predictions too extreme). "
        "Rules have no probability of their own: their probability is the training event rate of their tier.",
    ]
    return "\n".join(lines) + "\n"


def write_external_report(
    table: pd.DataFrame, out_dir: Path, title: str, context: dict[str, str] | None = None
) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(table, out_dir / "external_validation.csv", encoding="utf-8")
    path = out_dir / "external_validation.md"
    path.write_text(render_markdown(table, title, context), encoding="utf-8")
    return path
