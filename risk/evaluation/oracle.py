"""How good can a method be on a synthetic county? The generator's latent truth against the modelled outcome.

    python -m risk.evaluation.oracle RAW_COUNTY VALIDATED_COUNTY [--figure docs/figures/x.png]

For the test snapshot (the latest complete one, whose one-year outcome window is the final year of the
history) it joins the labels (definitions/outcomes.yaml) with `_synth/truth.parquet` and reports:
- the oracle AUROC: the true probability of any modelled outcome in the window (frailty included);
- the AUROC with the frailty at its mean: roughly the best any method that sees only data can approach
  (it still knows the TRUE risk factors, not noisy, sparse readings);
- the realised event rate by decile of the true risk (calibration of the generator against itself);
- per observable input, the mean true risk by decile of the input (the figure): which inputs carry the
  truth, and in what shape (linear in the log-odds or not).
The truth is only read here, for evaluation; it never reaches the features (tests/test_synth_outcomes.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.evaluation import metrics
from risk.models.labels import data_end_date
from risk.models.outcomes import outcome_definition
from risk.models.training_set import (
    SnapshotPlan,
    build_training_set,
    latest_complete_as_of,
    resolve_canonical_dir,
)

INPUTS = {
    "age": "age (years)",
    "bp_last_sbp": "last SBP (mmHg)",
    "fpg_last": "last FPG (mmol/L)",
    "hba1c_last": "last HbA1c (%)",
    "tc_last": "last TC (mmol/L)",
    "hdl_c_last": "last HDL-C (mmol/L)",
    "egfr_last": "last eGFR",
    "uacr_last": "last UACR (mg/g)",
    "chinapar_risk_10y": "China-PAR 10-y risk (features)",
}


@dataclass
class OracleReport:
    n: int
    events: int
    as_of: str
    oracle_auroc: float
    oracle_auroc_ci: tuple[float, float]
    no_frailty_auroc: float
    no_frailty_auroc_ci: tuple[float, float]
    deciles: pd.DataFrame  # decile, n, mean true risk, realised event rate
    by_input: dict[str, pd.DataFrame]  # input -> decile of input, mean input, mean true risk, event rate
    frame: pd.DataFrame


def oracle_report(raw_dir: Path, validated_dir: Path, resamples: int = 200) -> OracleReport:
    truth_path = Path(raw_dir) / "_synth" / "truth.parquet"
    if not truth_path.is_file():
        raise RiskUserError(f"{raw_dir}: no _synth/truth.parquet (not a synthetic county)")
    canonical = resolve_canonical_dir(validated_dir)
    definition = outcome_definition()
    data_end = data_end_date(canonical)
    as_of = latest_complete_as_of(data_end, definition.horizon_days)
    if as_of + timedelta(days=definition.horizon_days) < data_end - timedelta(days=92):
        raise RiskUserError("the truth covers the final year of history; the test window does not end there")
    plan = SnapshotPlan(test_as_of=as_of, train_as_of=(), horizon_days=definition.horizon_days)
    test = build_training_set(canonical, plan, definition=definition, data_end=data_end).test
    truth = pd.read_parquet(truth_path)
    frame = test.merge(truth, on="person_id", how="inner", suffixes=("", "_truth"))
    y = frame["outcome"].to_numpy().astype(int)
    oracle = frame["true_risk_final_year"].to_numpy()
    blind = frame["true_risk_final_year_no_frailty"].to_numpy()
    boot = metrics.bootstrap_auc_ap({"oracle": oracle, "blind": blind}, y, resamples, 7)
    deciles = (
        frame.assign(decile=pd.qcut(frame["true_risk_final_year"], 10, labels=False, duplicates="drop") + 1)
        .groupby("decile")
        .agg(
            n=("outcome", "size"),
            mean_true_risk=("true_risk_final_year", "mean"),
            event_rate=("outcome", "mean"),
        )
        .reset_index()
    )
    by_input = {}
    for column in INPUTS:
        if column not in frame.columns or frame[column].notna().sum() < 100:
            continue
        known = frame[frame[column].notna()]
        bins = pd.qcut(known[column].rank(method="first"), 10, labels=False) + 1
        by_input[column] = (
            known.assign(decile=bins)
            .groupby("decile")
            .agg(
                value=(column, "mean"),
                mean_true_risk=("true_risk_final_year", "mean"),
                event_rate=("outcome", "mean"),
                n=("outcome", "size"),
            )
            .reset_index()
        )
    return OracleReport(
        n=len(frame),
        events=int(y.sum()),
        as_of=as_of.isoformat(),
        oracle_auroc=metrics.auc_ap(oracle, y)[0],
        oracle_auroc_ci=metrics.percentile_interval(boot["oracle"][0]),
        no_frailty_auroc=metrics.auc_ap(blind, y)[0],
        no_frailty_auroc_ci=metrics.percentile_interval(boot["blind"][0]),
        deciles=deciles,
        by_input=by_input,
        frame=frame,
    )


def plot_inputs(report: OracleReport, path: Path, title: str) -> Path:
    """Mean true one-year risk (log scale) by decile of each observable input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.by_input)
    cols = 3
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.1 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        table = report.by_input[name]
        ax.plot(table["value"], table["mean_true_risk"], marker="o", label="mean true risk")
        ax.plot(table["value"], table["event_rate"], marker="x", linestyle=":", label="realised rate")
        ax.set_yscale("log")
        ax.set_title(INPUTS[name], fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_markdown(report: OracleReport) -> str:
    lo, hi = report.oracle_auroc_ci
    blo, bhi = report.no_frailty_auroc_ci
    lines = [
        f"Test snapshot {report.as_of}: {report.n:,} managed patients, {report.events:,} with the modelled "
        f"outcome in the following year ({report.events / report.n:.1%}).",
        "",
        f"- oracle AUROC (true risk, frailty included): **{report.oracle_auroc:.3f}** ({lo:.3f}-{hi:.3f})",
        f"- true risk with the unobserved frailty at its mean: **{report.no_frailty_auroc:.3f}** "
        f"({blo:.3f}-{bhi:.3f}) — about the ceiling for any method, which also sees only noisy, sparse "
        "readings of the true risk factors",
        "",
        "| decile of true risk | n | mean true 1-year risk | realised event rate |",
        "|---|---|---|---|",
    ]
    for _, r in report.deciles.iterrows():
        lines.append(
            f"| {int(r['decile'])} | {int(r['n']):,} | {r['mean_true_risk']:.3f} | {r['event_rate']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("raw", type=Path)
    parser.add_argument("validated", type=Path)
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--title", default="Mean true 1-year risk by decile of each observable input")
    args = parser.parse_args()
    report = oracle_report(args.raw, args.validated)
    print(render_markdown(report))
    for name, table in report.by_input.items():
        print(name, table.round(4).to_dict("list"))
    if args.figure:
        plot_inputs(report, args.figure, args.title)


if __name__ == "__main__":
    main()
