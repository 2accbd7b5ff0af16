"""Training job: training set over as-of snapshots -> calibrated models -> one evaluation against the rules ->
report -> MLflow run and registry -> optional export for the nightly job.

`train_county` is `risk train INPUT_DIR --as-of DATE`;
`train_table` is `risk train --table FILE --label COLUMN`
(any per-person table with a binary outcome, same harness and report).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk import provenance
from risk.errors import InputFileError, RiskUserError
from risk.evaluation import EstimatorScores, EvaluationResult, RuleBaseline, evaluate, write_report
from risk.evaluation.external import validation_table, write_external_report
from risk.evaluation.harness import age_bands
from risk.evaluation.report import closing_note
from risk.models.drift import training_profile
from risk.models.estimators import MODEL_KINDS, MODEL_LABELS, CalibratedRiskModel
from risk.models.export import write_exported_model
from risk.models.features import FeatureSpec, feature_set_version, select_model_features
from risk.models.labels import LABEL_COLUMNS, data_end_date
from risk.models.model_card import render_model_card
from risk.models.outcomes import outcome_definition
from risk.models.policy import ModelPolicy, TrainingPolicy, default_model_policy
from risk.models.training_set import (
    SNAPSHOT_COLUMN,
    FeatureFunction,
    SnapshotPlan,
    TrainingSet,
    build_training_set,
    latest_complete_as_of,
    plan_snapshots,
    resolve_canonical_dir,
)
from risk.spreadsheet import write_csv
from risk.tiers.combine import combine_tiers
from risk.tiers.model import assign_probability_tiers
from risk.tiers.rule_set import TIER_RANK

log = logging.getLogger("risk.train")

NOT_FEATURES = frozenset({*LABEL_COLUMNS, SNAPSHOT_COLUMN})
RULES = "rules"
COMBINED = "combined"


@dataclass
class TrainResult:
    report: Path
    evaluation: EvaluationResult
    models: dict[str, CalibratedRiskModel]
    chosen: str
    exported: Path | None
    mlflow_run_id: str | None
    registered: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"report: {self.report}"]
        for _, r in self.evaluation.overall.iterrows():
            lines.append(
                f"  {r['estimator']:<22} AUROC {r['auroc']:.3f} ({r['auroc_low']:.3f}-{r['auroc_high']:.3f})"
                f"  AUPRC {r['auprc']:.3f} ({r['auprc_low']:.3f}-{r['auprc_high']:.3f})"
                f"  Brier {r.get('brier', float('nan')):.4f}  red {100 * r['red_share']:.1f}%"
                f" sens {100 * r['red_sensitivity']:.1f}% PPV {100 * r['red_ppv']:.1f}%"
            )
        lines.append(
            f"exported model: {self.chosen}"
            + (f" -> {self.exported}" if self.exported else " (not exported)")
        )
        if self.mlflow_run_id:
            lines.append(f"MLflow run {self.mlflow_run_id}; registered {self.registered}")
        lines.append("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items()))
        return "\n".join(lines)


def _fit_models(
    spec: FeatureSpec,
    fit_X: pd.DataFrame,
    fit_y: np.ndarray,
    cal_X: pd.DataFrame,
    cal_y: np.ndarray,
    training: TrainingPolicy,
    timings: dict[str, float],
) -> dict[str, CalibratedRiskModel]:
    models = {}
    for kind in MODEL_KINDS:
        started = time.perf_counter()
        model = CalibratedRiskModel(
            kind=kind,
            spec=spec,
            params=training.estimator_params(kind),
            calibration_method=training.calibration_method,
            seed=training.seed,
            n_threads=training.threads,
        )
        models[kind] = model.fit(fit_X, fit_y, calibration_X=cal_X, calibration_y=cal_y)
        timings[f"fit_{kind}"] = time.perf_counter() - started
        log.info("fitted %s in %.1f s", kind, timings[f"fit_{kind}"])
    return models


def _choose(policy: ModelPolicy, overall: pd.DataFrame) -> str:
    choice = policy.training.export
    if choice in MODEL_KINDS:
        return choice
    scores = overall.set_index("estimator")["auprc"]
    best = max(MODEL_KINDS, key=lambda k: (round(float(scores[k]), 3), k == "logistic_regression"))
    return best


def _combined_scores(
    rules: RuleBaseline,
    model: CalibratedRiskModel,
    cal_X: pd.DataFrame,
    cal_y: np.ndarray,
    test_X: pd.DataFrame,
    policy: ModelPolicy,
) -> EstimatorScores:
    """The combined policy as an estimator: tier from combine_tiers; ranked by tier, then model risk; its
    probability is the event rate of the combined tier on the calibration slice (out of the model's fit)."""

    def tiers(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        probability = model.predict_proba(X)[:, 1]
        ids = pd.RangeIndex(len(X)).astype(str)
        rule = pd.DataFrame({"person_id": ids, "tier_rules": rules.predict_tiers(X)})
        model_tier = pd.DataFrame(
            {"person_id": ids, "tier_model": assign_probability_tiers(probability, policy)}
        )
        return combine_tiers(rule, model_tier, policy)["tier"].to_numpy(), probability

    cal_tier, _ = tiers(cal_X)
    rates = pd.Series(cal_y).groupby(cal_tier).mean()
    test_tier, probability = tiers(test_X)
    rank = pd.Series(test_tier).map(TIER_RANK).to_numpy(dtype="float64")
    fallback = float(np.mean(cal_y))
    return EstimatorScores(
        score=rank + probability,
        tier=test_tier,
        probability=pd.Series(test_tier).map(rates).fillna(fallback).to_numpy(dtype="float64"),
        kind="combined",
        note="combined: rules tier raised by the exported model's tier (model_policy.yaml `combine`); "
        "ranked by combined tier, then model risk; probability = event rate of the combined tier on the "
        "calibration slice.",
    )


def _groups(frame: pd.DataFrame, policy: ModelPolicy) -> pd.DataFrame:
    groups = pd.DataFrame(index=frame.index)
    if "sex" in frame.columns:
        groups["sex"] = frame["sex"]
    if "age" in frame.columns:
        groups["age_band"] = age_bands(frame["age"], policy.evaluation.age_bands)
    if "township_id" in frame.columns:
        groups["township_id"] = frame["township_id"]
    return groups.reset_index(drop=True)


def _tier_judgement(result: EvaluationResult, test: pd.DataFrame, chosen: str) -> dict[str, Any] | None:
    """The tier judgement of issue 15 on the test snapshot: rules, the exported model and combined, by sex,
    10-year age band and township, and events caught in each team's first K of the method's ranking."""
    from risk.evaluation.tier_judgement import judge_methods, order_within, ten_year_bands

    names = {RULES: RULES, "model": chosen, COMBINED: COMBINED}
    scores = {label: result.scores[name] for label, name in names.items() if name in result.scores}
    scores = {label: s for label, s in scores.items() if s.tier is not None}
    if not scores or "age" not in test.columns or "sex" not in test.columns:
        return None
    groups = pd.DataFrame({"sex": test["sex"].to_numpy(), "age_band": ten_year_bands(test["age"]).to_numpy()})
    if "township_id" in test.columns:
        groups["township"] = test["township_id"].to_numpy()
    team = test["team_id"].astype(str).to_numpy() if "team_id" in test.columns else None
    orders = (
        {label: order_within(team, -np.asarray(s.score, dtype=float)) for label, s in scores.items()}
        if team is not None
        else None
    )
    tiers = {label: np.asarray(s.tier).astype(object) for label, s in scores.items()}
    return judge_methods(tiers, result.y, groups, orders, team)


def _judgement_lines(judgement: dict[str, Any] | None) -> list[str]:
    from risk.evaluation.tier_judgement import judgement_lines

    if judgement is None:
        return []
    return [
        *judgement_lines(judgement),
        "Ranking for capture here: each method's own score (rules: tier and rule score; model: predicted "
        "risk; combined: tier, then model risk). The nightly's priority order (urgency first) is judged by "
        "`risk evaluate-tiers`.",
        "",
    ]


def _overall_metrics(result: EvaluationResult) -> dict[str, float]:
    out = {}
    for _, r in result.overall.iterrows():
        for metric in (
            "auroc",
            "auroc_low",
            "auroc_high",
            "auprc",
            "auprc_low",
            "auprc_high",
            "brier",
            "calibration_slope",
            "calibration_intercept",
            "red_share",
            "red_sensitivity",
            "red_ppv",
        ):
            if metric in r and pd.notna(r[metric]):
                out[f"{r['estimator']}.{metric}"] = float(r[metric])
    return out


def _track_and_export(
    *,
    fitted: _Fitted,
    report: Path,
    spec: FeatureSpec,
    params: dict[str, Any],
    context: dict[str, Any],
    tracking_uri: str | None,
    experiment: str,
    export_dir: Path | None,
    track: bool,
    example: pd.DataFrame,
    timings: dict[str, float],
    metadata_base: dict[str, Any],
    summary: dict[str, Any],
) -> TrainResult:
    """Log the run to MLflow (artifacts: the report folder), export the chosen model with its card."""
    result, models, chosen, report_dir = fitted.result, fitted.models, fitted.chosen, report.parent
    run_id, registered = None, {}
    code_version = provenance.code_version()
    if track:
        from risk.models.tracking import log_training_run

        started = time.perf_counter()
        tracked = log_training_run(
            tracking_uri=tracking_uri,
            experiment=experiment,
            run_name=f"train-{context.get('test snapshot', '')}",
            params=params,
            metrics=_overall_metrics(result),
            tags={
                "data_fingerprint": str(context.get("data fingerprint", "")),
                "code_version": code_version,
                "chosen_model": chosen,
                "feature_set_version": metadata_base["feature_set_version"],
            },
            artifact_dir=report_dir,
            feature_list=spec.columns,
            models=models,
            registered_names={kind: f"risk-{kind}" for kind in models},
            example=example,
        )
        run_id, registered = tracked.run_id, tracked.model_versions
        timings["mlflow"] = time.perf_counter() - started
    exported = None
    if export_dir is not None:
        metadata = {
            **metadata_base,
            "model_kind": chosen,
            "model_label": MODEL_LABELS[chosen],
            "code_version": code_version,
            "feature_columns": spec.columns,
            "feature_spec": spec.as_dict(),
            "mlflow_run_id": run_id,
            "registered_model": f"risk-{chosen}",
            "registered_version": registered.get(f"risk-{chosen}"),
            "calibration_method": models[chosen].calibration_method,
        }
        card = render_model_card(metadata, result.overall, result.subgroups, closing_note(result))
        # the training population, for the nightly job's drift check (definitions/model_policy.yaml drift)
        profile = training_profile(
            fitted.train_rows,
            spec.number_columns,
            list(spec.categorical),
            bins=fitted.policy.drift.bins,
            source=f"training rows of {metadata['version']} ({len(fitted.train_rows):,})",
        )
        exported = write_exported_model(models[chosen], metadata, card, export_dir, profile=profile)
    return TrainResult(report, result, models, chosen, exported, run_id, registered, timings, summary)


@dataclass
class _Split:
    """The rows of one training job: the models fit on `fit` and calibrate on `cal` (together `train`, on
    which the rule baseline is fitted); every estimator is scored on `test`."""

    train: pd.DataFrame
    train_y: np.ndarray
    fit: pd.DataFrame
    fit_y: np.ndarray
    cal: pd.DataFrame
    cal_y: np.ndarray
    test: pd.DataFrame
    test_y: np.ndarray

    @classmethod
    def of(
        cls,
        train: pd.DataFrame,
        train_y: np.ndarray,
        in_cal: np.ndarray,
        test: pd.DataFrame,
        test_y: np.ndarray,
    ) -> _Split:
        return cls(
            train, train_y, train[~in_cal], train_y[~in_cal], train[in_cal], train_y[in_cal], test, test_y
        )


@dataclass
class _Fitted:
    models: dict[str, CalibratedRiskModel]
    estimators: dict[str, Any]
    chosen: str
    result: EvaluationResult
    policy: ModelPolicy
    train_rows: pd.DataFrame  # what the models were trained on (its profile is exported for drift checks)


def _fit_and_evaluate(
    split: _Split,
    spec: FeatureSpec,
    policy: ModelPolicy,
    rules: RuleBaseline | None,
    timings: dict[str, float],
    with_combined: bool,
) -> _Fitted:
    """The training core of both jobs: fit the models, evaluate them (and the rules, and with
    `with_combined` the combined tier of the rules and the exported model) on the test rows, choose the
    model to export."""
    models = _fit_models(spec, split.fit, split.fit_y, split.cal, split.cal_y, policy.training, timings)
    started = time.perf_counter()
    estimators: dict[str, Any] = ({RULES: rules} if rules is not None else {}) | models
    combined = with_combined and rules is not None
    if combined:  # the combined estimator needs the export choice first; that takes point estimates only
        quick = policy.updated({"evaluation": {"bootstrap_resamples": 1}})
        chosen = _choose(policy, evaluate(dict(estimators), split.test, split.test_y, None, quick).overall)
        estimators[COMBINED] = _combined_scores(
            rules, models[chosen], split.cal, split.cal_y, split.test, policy
        )
    result = evaluate(
        estimators,
        split.test,
        split.test_y,
        _groups(split.test, policy),
        policy,
        reference=RULES if rules is not None else None,
    )
    if not combined:
        chosen = _choose(policy, result.overall)
    timings["evaluate"] = time.perf_counter() - started
    return _Fitted(models, estimators, chosen, result, policy, split.train)


def _metadata_base(
    fitted: _Fitted,
    split: _Split,
    policy: ModelPolicy,
    *,
    version: str,
    feature_set: str,
    outcome: str,
    horizon_days: Any,
    data_description: str,
    data_fingerprint: str,
    dates: dict[str, Any],
) -> dict[str, Any]:
    """What the exported model records about its training (both jobs, one layout)."""
    return {
        "version": version,
        "feature_set_version": feature_set,
        "outcome_version": outcome,
        "horizon_days": horizon_days,
        "model_policy_version": policy.version,
        "tiering": policy.section("tiering"),
        "data_description": data_description,
        "data_fingerprint": data_fingerprint,
        **dates,
        "n_train_rows": len(split.train),
        "train_prevalence": float(split.train_y.mean()),
        "n_test_rows": len(split.test),
        "test_prevalence": float(split.test_y.mean()),
        "test_metrics": fitted.result.overall.set_index("estimator").to_dict("index"),
    }


def train_county(
    input_dir: Path,
    out_dir: Path,
    as_of: date | None = None,
    snapshots: int | None = None,
    every_months: int | None = None,
    export_dir: Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    policy: ModelPolicy | None = None,
    feature_fn: FeatureFunction | None = None,
    rules: Any = None,
    experiment: str = "risk-county",
    data_description: str | None = None,
    external_dir: Path | None = None,
) -> TrainResult:
    """Train LR + gradient boosting on quarterly snapshots; evaluate against the rules on the test one.

    external_dir: another validated county (e.g. a second synthetic profile): the same fitted estimators are
    also scored on its test snapshot (external validation, report/external_validation.md)."""
    from risk.tiers.rules import RuleTierClassifier

    policy = policy if policy is not None else default_model_policy()
    training = policy.training
    timings: dict[str, float] = {}
    started = time.perf_counter()
    canonical = resolve_canonical_dir(input_dir)
    definition = outcome_definition()
    data_end = data_end_date(canonical)
    test_as_of = as_of or latest_complete_as_of(data_end, definition.horizon_days)
    plan = plan_snapshots(
        test_as_of,
        snapshots or training.snapshots,
        every_months or training.every_months,
        definition.horizon_days,
    )
    dataset: TrainingSet = build_training_set(canonical, plan, feature_fn, definition, data_end)
    timings["training_set"] = time.perf_counter() - started

    train, test = dataset.train, dataset.test.reset_index(drop=True)
    spec = select_model_features(train, policy, exclude=NOT_FEATURES)
    # Calibration slice: all training-snapshot rows of a random share of persons, left out of fitting, so the
    # calibrator sees people the base model has never seen; nothing from the test period is involved.
    rng = np.random.default_rng(training.seed)
    persons = train["person_id"].astype(str).unique()
    held_out = persons[rng.random(len(persons)) < training.calibration_share]
    in_held_out = train["person_id"].astype(str).isin(held_out).to_numpy()
    split = _Split.of(train, train["outcome"].to_numpy(), in_held_out, test, test["outcome"].to_numpy())
    notes: list[str] = []
    try:
        baseline = RuleBaseline(RuleTierClassifier(rules)).fit(train, split.train_y)
    except RiskUserError as exc:
        baseline = None
        notes.append(f"rules omitted: {exc}")
    fitted = _fit_and_evaluate(split, spec, policy, baseline, timings, with_combined=True)
    external_table = None
    if external_dir is not None:
        started = time.perf_counter()
        external_table = _external_validation(
            external_dir, plan, feature_fn, definition, fitted, split, policy
        )
        timings["external_validation"] = time.perf_counter() - started

    context = {
        "data": data_description or f"canonical tables in {canonical}",
        "data fingerprint": dataset.data_fingerprint,
        "data end": data_end.isoformat(),
        "outcome": f"outcomes.yaml {definition.version}, horizon {definition.horizon_days} days",
        "training snapshots": ", ".join(d.isoformat() for d in plan.train_as_of)
        + f" ({len(train):,} person-snapshots, {train['outcome'].mean():.1%} events; "
        f"{len(split.fit):,} fit, {len(split.cal):,} calibration)",
        "test snapshot": f"{plan.test_as_of.isoformat()}",
        "features": f"{len(spec.columns)} model inputs, feature-set version {feature_set_version()}",
        "model policy": f"model_policy.yaml {policy.version}",
        "code version": provenance.code_version(),
    }
    report_dir = Path(out_dir) / "report"
    started = time.perf_counter()
    notes += [
        "Temporal split: training snapshots' outcome windows end on or before the test as-of date, so "
        "nothing "
        "after the test as-of date is used for training; the same persons may appear in training (earlier "
        "snapshots) and test.",
        f"Exported model choice: model_policy.yaml training.export = {training.export} -> {fitted.chosen}.",
    ]
    judgement = _tier_judgement(fitted.result, test, fitted.chosen)
    if judgement is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        write_csv(judgement["table"], report_dir / "tier_judgement.csv", encoding="utf-8")
    report = write_report(
        fitted.result,
        report_dir,
        title=f"Risk model evaluation — test snapshot {plan.test_as_of}",
        context=context,
        notes=notes,
        sections=_judgement_lines(judgement),
    )
    if external_table is not None:
        write_external_report(
            external_table,
            report_dir,
            title=f"External validation — test snapshot {plan.test_as_of}",
            context={"development data": str(context["data"]), "external data": str(external_dir)},
        )
    timings["report"] = time.perf_counter() - started
    params = {
        "snapshot_plan": plan.as_dict(),
        "outcome_version": definition.version,
        "model_policy_version": policy.version,
        "training": policy.section("training"),
        "tiering": policy.section("tiering"),
        "combine": policy.section("combine"),
        "feature_set_version": feature_set_version(),
        "n_features": len(spec.columns),
        "n_fit_rows": len(split.fit),
        "n_calibration_rows": len(split.cal),
        "n_test_rows": len(test),
        "data_fingerprint": dataset.data_fingerprint,
    }
    metadata_base = _metadata_base(
        fitted,
        split,
        policy,
        version=f"{fitted.chosen}-{plan.test_as_of:%Y%m%d}-{dataset.data_fingerprint[:8]}",
        feature_set=feature_set_version(),
        outcome=definition.version,
        horizon_days=definition.horizon_days,
        data_description=str(context["data"]),
        data_fingerprint=dataset.data_fingerprint,
        dates={
            "data_end": data_end.isoformat(),
            "train_as_of": [d.isoformat() for d in plan.train_as_of],
            "test_as_of": plan.test_as_of.isoformat(),
        },
    )
    summary = {
        "n_train": len(train),
        "n_test": len(test),
        "train_prevalence": float(train["outcome"].mean()),
        "test_prevalence": float(split.test_y.mean()),
        "plan": plan.as_dict(),
        "dataset_timings": dataset.timings,
    }
    if external_table is not None:
        summary["external_validation"] = external_table
    return _track_and_export(
        fitted=fitted,
        report=report,
        spec=spec,
        params=params,
        context=context,
        tracking_uri=tracking_uri,
        experiment=experiment,
        export_dir=export_dir,
        track=track,
        example=test.head(5),
        timings=timings,
        metadata_base=metadata_base,
        summary=summary,
    )


def _external_validation(
    external_dir: Path,
    plan: SnapshotPlan,
    feature_fn: FeatureFunction | None,
    definition: Any,
    fitted: _Fitted,
    split: _Split,
    policy: ModelPolicy,
) -> pd.DataFrame:
    """Score the fitted estimators on another county's test snapshot (same as-of date, same outcome)."""
    canonical = resolve_canonical_dir(external_dir)
    data_end = data_end_date(canonical)
    external_plan = SnapshotPlan(test_as_of=plan.test_as_of, train_as_of=(), horizon_days=plan.horizon_days)
    test = build_training_set(canonical, external_plan, feature_fn, definition, data_end).test
    test = test.reset_index(drop=True)
    scored = {name: est for name, est in fitted.estimators.items() if name != COMBINED}
    if RULES in scored:
        model = fitted.models[fitted.chosen]
        scored[COMBINED] = _combined_scores(scored[RULES], model, split.cal, split.cal_y, test, policy)
    external = evaluate(scored, test, test["outcome"].to_numpy(), None, policy)
    return validation_table({"internal": fitted.result, "external": external})


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable file for the user
        raise InputFileError(str(path), f"cannot be read ({type(exc).__name__}: {exc})") from exc
    raise InputFileError(str(path), "expected a .parquet or .csv file")


def binary_label(frame: pd.DataFrame, label: str, path: Path) -> np.ndarray:
    if label not in frame.columns:
        raise InputFileError(str(path), "outcome column not found", column=label)
    values = frame[label]
    if values.isna().any():
        raise InputFileError(
            str(path), f"{int(values.isna().sum())} rows have no outcome value", column=label
        )
    mapped = values.map(
        lambda v: (
            {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0}.get(str(v).strip().lower(), v)
            if isinstance(v, str)
            else v
        )
    )
    try:
        y = pd.to_numeric(mapped).to_numpy()
    except (TypeError, ValueError) as exc:
        raise InputFileError(str(path), "outcome must be 0/1 (or true/false)", column=label) from exc
    if not set(np.unique(y)) <= {0, 1}:
        raise InputFileError(
            str(path), f"outcome must be 0/1, found {sorted(set(np.unique(y)))[:5]}", column=label
        )
    if len(np.unique(y)) < 2:
        raise InputFileError(str(path), "outcome has only one value; nothing to learn", column=label)
    return y.astype(int)


def train_table(
    table: Path,
    label: str,
    out_dir: Path,
    id_column: str = "person_id",
    test_share: float = 0.3,
    export_dir: Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    policy: ModelPolicy | None = None,
    experiment: str = "risk-table",
) -> TrainResult:
    """Train and evaluate on any per-person table with a binary outcome column (random split by person)."""
    policy = policy if policy is not None else default_model_policy()
    training = policy.training
    timings: dict[str, float] = {}
    frame = read_table(table)
    y = binary_label(frame, label, table)
    if id_column not in frame.columns:
        frame = frame.assign(**{id_column: np.arange(len(frame)).astype(str)})
    frame = frame.assign(person_id=frame[id_column].astype(str))
    exclude = set(NOT_FEATURES) | {label, id_column}
    spec = select_model_features(frame.drop(columns=[label]), policy, exclude=exclude)
    if not spec.columns:
        raise InputFileError(str(table), "no usable feature columns (numbers, booleans or categories)")
    rng = np.random.default_rng(training.seed)
    persons = frame["person_id"].unique()
    test_persons = set(persons[rng.random(len(persons)) < test_share])
    is_test = frame["person_id"].isin(test_persons).to_numpy()
    train, test = frame[~is_test], frame[is_test].reset_index(drop=True)
    train_y, test_y = y[~is_test], y[is_test]
    cal_mask = rng.random(len(train)) < training.calibration_share
    if len(np.unique(test_y)) < 2 or len(np.unique(train_y[cal_mask])) < 2:
        raise RiskUserError(f"{table}: too few outcome events to split into training, calibration and test")
    split = _Split.of(train, train_y, cal_mask, test, test_y)
    notes = [
        f"Random split by {id_column}: {test_share:.0%} of persons held out for testing (seed "
        f"{training.seed}); {cal_mask.mean():.0%} of training rows calibrate."
    ]
    try:
        from risk.tiers.rules import RuleTierClassifier

        baseline = RuleBaseline(RuleTierClassifier()).fit(train, train_y)
    except Exception as exc:  # noqa: BLE001 - a county table rarely has every rule input; say so and go on
        baseline = None
        notes.append(
            f"Rules omitted: the table lacks the rule inputs ({type(exc).__name__}: {str(exc)[:160]})."
        )
    fitted = _fit_and_evaluate(split, spec, policy, baseline, timings, with_combined=False)
    fingerprint = provenance.file_fingerprint([Path(table)])
    context = {
        "data": f"{table} (label {label})",
        "data fingerprint": fingerprint,
        "rows": f"{len(train):,} training, {len(test):,} test",
        "features": f"{len(spec.columns)} model inputs",
        "code version": provenance.code_version(),
    }
    report = write_report(
        fitted.result,
        Path(out_dir) / "report",
        title=f"Risk model evaluation — {Path(table).name}",
        context=context,
        notes=notes,
    )
    params = {
        "table": str(table),
        "label": label,
        "test_share": test_share,
        "training": policy.section("training"),
        "tiering": policy.section("tiering"),
        "n_features": len(spec.columns),
        "data_fingerprint": fingerprint,
    }
    metadata_base = _metadata_base(
        fitted,
        split,
        policy,
        version=f"{fitted.chosen}-{Path(table).stem}-{fingerprint[:8]}",
        feature_set="unknown",
        outcome=f"column {label}",
        horizon_days="as defined by the table",
        data_description=str(context["data"]),
        data_fingerprint=fingerprint,
        dates={"train_as_of": ["n/a"], "test_as_of": "random person split"},
    )
    return _track_and_export(
        fitted=fitted,
        report=report,
        spec=spec,
        params=params,
        context=context,
        tracking_uri=tracking_uri,
        experiment=experiment,
        export_dir=export_dir,
        track=track,
        example=test.head(5),
        timings=timings,
        metadata_base=metadata_base,
        summary={"n_train": len(train), "n_test": len(test)},
    )
