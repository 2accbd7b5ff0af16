"""The evaluation report: Markdown with PNG plots and CSV tables, one folder per run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from risk.evaluation.harness import EvaluationResult  # noqa: E402
from risk.formatting import fmt, pct  # noqa: E402
from risk.spreadsheet import write_csv  # noqa: E402

TIER_COLOURS = {"red": "#c0392b", "yellow": "#e1b12c", "green": "#27ae60"}
DECISION_THRESHOLDS_SHOWN = (0.05, 0.10, 0.15, 0.20, 0.30)


def _ci(row: pd.Series, metric: str) -> str:
    return f"{fmt(row[metric])} ({fmt(row[metric + '_low'])}–{fmt(row[metric + '_high'])})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def sensitivity_at_share(score: np.ndarray, y: np.ndarray, share: float) -> float:
    """Share of events among the top `share` of rows by score (ties broken by row order)."""
    k = math.ceil(share * len(y))
    if k == 0 or y.sum() == 0:
        return float("nan")
    top = np.argsort(-score, kind="stable")[:k]
    return float(y[top].sum() / y.sum())


def closing_note(result: EvaluationResult) -> list[str]:
    """Plain statements of where each model does or does not beat the reference, with the figures."""
    if result.reference is None or result.differences.empty:
        return ["Only one estimator was evaluated; there is nothing to compare."]
    overall = result.overall.set_index("estimator")
    ref = result.reference
    lines = []
    for name in overall.index:
        if name == ref:
            continue
        parts = []
        for metric, label in (("auroc", "AUROC"), ("auprc", "AUPRC")):
            diffs = result.differences
            d = diffs[(diffs["estimator"] == name) & (diffs["metric"] == metric)].iloc[0]
            verdict = "higher" if d["low"] > 0 else "lower" if d["high"] < 0 else "not clearly different"
            parts.append(
                f"{label} {fmt(overall.at[name, metric])} vs {fmt(overall.at[ref, metric])}, "
                f"difference {d['difference']:+.3f} (95% CI {d['low']:+.3f} to {d['high']:+.3f}): "
                f"{verdict}"
            )
        if "brier" in overall.columns and not math.isnan(overall.at[name, "brier"]):
            better = overall.at[name, "brier"] < overall.at[ref, "brier"]
            parts.append(
                f"Brier {fmt(overall.at[name, 'brier'], 4)} vs {fmt(overall.at[ref, 'brier'], 4)} "
                f"({'better' if better else 'not better'})"
            )
        ref_share = overall.at[ref, "red_share"]
        if not math.isnan(ref_share) and ref_share > 0:
            model_sens = sensitivity_at_share(result.scores[name].score, result.y, ref_share)
            parts.append(
                f"red tier: {pct(overall.at[name, 'red_share'])} of patients, sensitivity "
                f"{pct(overall.at[name, 'red_sensitivity'])}, PPV {pct(overall.at[name, 'red_ppv'])} "
                f"(rules: {pct(ref_share)}, {pct(overall.at[ref, 'red_sensitivity'])}, "
                f"{pct(overall.at[ref, 'red_ppv'])}); flagging the same {pct(ref_share)} as the rules, "
                f"{name} would catch {pct(model_sens)} of events"
            )
        weaker = _subgroups_not_beaten(result.subgroups, name, ref)
        if weaker:
            parts.append(
                f"subgroups where it does not beat {ref} (AUROC not above {ref} + {SUBGROUP_MARGIN}): "
                + ", ".join(weaker)
            )
        lines.append(f"- **{name} vs {ref}**: " + "; ".join(parts) + ".")
    return lines


SUBGROUP_MARGIN = 0.01


def _subgroups_not_beaten(subgroups: pd.DataFrame, name: str, ref: str) -> list[str]:
    if subgroups.empty or "auroc" not in subgroups.columns:
        return []
    table = subgroups.pivot_table(index=["group", "level"], columns="estimator", values="auroc", sort=False)
    if name not in table.columns or ref not in table.columns:
        return []
    table = table.dropna(subset=[name, ref])
    weaker = table[table[name] <= table[ref] + SUBGROUP_MARGIN]
    return [f"{group} {level} ({r[name]:.3f} vs {r[ref]:.3f})" for (group, level), r in weaker.iterrows()]


def _plot_curves(result: EvaluationResult, out_dir: Path) -> dict[str, str]:
    files = {}
    y = result.y
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, s in result.scores.items():
        fpr, tpr, _ = roc_curve(y, s.score)
        precision, recall, _ = precision_recall_curve(y, s.score)
        axes[0].plot(fpr, tpr, label=name)
        axes[1].plot(recall, precision, label=name)
    axes[0].plot([0, 1], [0, 1], ls=":", c="grey")
    axes[0].set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    axes[1].axhline(y.mean(), ls=":", c="grey", label="prevalence")
    axes[1].set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "roc_pr.png", dpi=110)
    plt.close(fig)
    files["roc_pr"] = "roc_pr.png"

    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for name, curve in result.calibration_curves.items():
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=name)
        top = max(top, curve["predicted"].max(), curve["observed"].max())
    ax.plot([0, top], [0, top], ls=":", c="grey", label="perfect")
    ax.set(xlabel="predicted risk", ylabel="observed event rate", title="Calibration (quantile bins)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=110)
    plt.close(fig)
    files["calibration"] = "calibration.png"

    curve = result.decision_curve
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for column in curve.columns.drop("threshold"):
        style = {"ls": ":", "c": "grey"} if column in ("treat_all", "treat_none") else {}
        ax.plot(curve["threshold"], curve[column], label=column, **style)
    prevalence = y.mean()
    ax.set_ylim(-0.01, max(prevalence * 1.1, 0.01))
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curve")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "decision_curve.png", dpi=110)
    plt.close(fig)
    files["decision_curve"] = "decision_curve.png"

    if not result.tiers.empty:
        fig, ax = plt.subplots(figsize=(7, 4))
        names = list(dict.fromkeys(result.tiers["estimator"]))
        width = 0.8 / 3
        for i, tier in enumerate(("green", "yellow", "red")):
            table = result.tiers
            rates = [
                table.loc[(table["estimator"] == n) & (table["tier"] == tier), "event_rate"].iloc[0]
                for n in names
            ]
            ax.bar(
                np.arange(len(names)) + (i - 1) * width, rates, width, color=TIER_COLOURS[tier], label=tier
            )
        ax.set_xticks(np.arange(len(names)), names, fontsize=8)
        ax.set(ylabel="12-month event rate", title="Event rate per tier")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "tiers.png", dpi=110)
        plt.close(fig)
        files["tiers"] = "tiers.png"
    return files


def write_report(
    result: EvaluationResult,
    out_dir: Path,
    title: str = "Risk model evaluation",
    context: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    sections: list[str] | None = None,
) -> Path:
    """Write report.md with PNG plots, plus overall/tiers/subgroups/decision_curve CSVs and metrics.json.

    sections: extra markdown lines placed after the closing note (e.g. the tier judgement)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plot_curves(result, out_dir)
    write_csv(result.overall, out_dir / "overall.csv", encoding="utf-8")
    write_csv(result.tiers, out_dir / "tiers.csv", encoding="utf-8")
    write_csv(result.subgroups, out_dir / "subgroups.csv", encoding="utf-8")
    write_csv(result.differences, out_dir / "differences.csv", encoding="utf-8")
    write_csv(result.decision_curve, out_dir / "decision_curve.csv", encoding="utf-8")
    closing = closing_note(result)
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {
                "n": result.n,
                "events": result.events,
                "reference": result.reference,
                "overall": result.overall.to_dict("records"),
                "differences": result.differences.to_dict("records"),
                "closing_note": closing,
                "context": context or {},
            },
            indent=2,
            default=str,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )

    lines = [f"# {title}", ""]
    for key, value in (context or {}).items():
        lines.append(f"- **{key}**: {value}")
    lines += [
        f"- **evaluated rows**: {result.n:,} persons, {result.events:,} with the outcome "
        f"({pct(result.events / max(result.n, 1))})",
        f"- **bootstrap**: {result.settings['bootstrap_resamples']} paired resamples (seed "
        f"{result.settings['seed']}), percentile 95% CIs",
        f"- **model tiers**: {json.dumps(result.settings['tiering'], default=str)}",
        "",
        "## Closing note",
        "",
        *closing,
        "",
        *(sections or []),
        "## Discrimination, calibration and the red tier",
        "",
    ]
    rows = []
    for _, r in result.overall.iterrows():
        rows.append(
            [
                r["estimator"],
                _ci(r, "auroc"),
                _ci(r, "auprc"),
                fmt(r.get("brier"), 4),
                fmt(r.get("calibration_slope"), 2),
                fmt(r.get("calibration_intercept"), 2),
                pct(r["red_share"]),
                pct(r["red_sensitivity"]),
                pct(r["red_ppv"]),
                pct(r["red_or_yellow_sensitivity"]),
            ]
        )
    lines += _table(
        [
            "estimator",
            "AUROC (95% CI)",
            "AUPRC (95% CI)",
            "Brier",
            "cal. slope",
            "cal. intercept",
            "red share",
            "red sensitivity",
            "red PPV",
            "red+yellow sensitivity",
        ],
        rows,
    )
    lines += [
        "Rules are ranked by their ordinal rule score; their probability (Brier, calibration, decision "
        "curve) is the training event rate of their tier. Calibration slope 1 and intercept 0 are ideal.",
        "",
    ]
    if not result.differences.empty:
        lines += [f"### Paired differences versus {result.reference}", ""]
        lines += _table(
            ["estimator", "metric", "difference (95% CI)"],
            [
                [
                    d["estimator"],
                    d["metric"].upper(),
                    f"{d['difference']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})",
                ]
                for _, d in result.differences.iterrows()
            ],
        )
    lines += [f"![ROC and precision-recall]({plots['roc_pr']})", "", "## Event rate per tier", ""]
    lines += _table(
        ["estimator", "tier", "patients", "share", "events", "event rate"],
        [
            [
                t["estimator"],
                t["tier"],
                f"{t['n']:,}",
                pct(t["share"]),
                f"{t['events']:,}",
                pct(t["event_rate"]),
            ]
            for _, t in result.tiers.iterrows()
        ],
    )
    if "tiers" in plots:
        lines += [f"![Event rate per tier]({plots['tiers']})", ""]
    lines += [
        "## Calibration",
        "",
        f"![Calibration]({plots['calibration']})",
        "",
        "## Decision curve",
        "",
        "Net benefit of acting on everyone whose predicted risk is at least the threshold (per 100 "
        "patients: net true positives).",
        "",
    ]
    curve = result.decision_curve
    shown = curve[curve["threshold"].round(4).isin(DECISION_THRESHOLDS_SHOWN)]
    columns = [c for c in curve.columns if c != "threshold"]
    lines += _table(
        ["threshold", *columns],
        [[pct(r["threshold"]), *[fmt(100 * r[c], 2) for c in columns]] for _, r in shown.iterrows()],
    )
    lines += [
        f"![Decision curve]({plots['decision_curve']})",
        "",
        "## Subgroups",
        "",
        "AUROC / AUPRC only where the subgroup has enough events (model_policy.yaml "
        "`evaluation.min_subgroup_events`).",
        "",
    ]
    if not result.subgroups.empty:
        for group, frame in result.subgroups.groupby("group", sort=False):
            lines += [f"### {group}", ""]
            rows = []
            for _, r in frame.iterrows():
                rows.append(
                    [
                        str(r["level"]),
                        f"{r['n']:,}",
                        pct(r["event_rate"]),
                        r["estimator"],
                        _ci(r, "auroc") if "auroc" in r and pd.notna(r.get("auroc")) else "–",
                        _ci(r, "auprc") if "auprc" in r and pd.notna(r.get("auprc")) else "–",
                        fmt(r.get("brier"), 4),
                        pct(r["red_share"]),
                        pct(r["red_sensitivity"]),
                        pct(r["red_ppv"]),
                    ]
                )
            lines += _table(
                [
                    "level",
                    "patients",
                    "event rate",
                    "estimator",
                    "AUROC (95% CI)",
                    "AUPRC (95% CI)",
                    "Brier",
                    "red share",
                    "red sensitivity",
                    "red PPV",
                ],
                rows,
            )
    all_notes = [*result.notes, *(notes or [])]
    if all_notes:
        lines += ["## Notes", "", *[f"- {n}" for n in all_notes], ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
