"""The evaluation harness: metrics agree with scikit-learn, rules and models go through the same path, the
report is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from risk.evaluation import EstimatorScores, RuleBaseline, evaluate, write_report
from risk.evaluation.harness import age_bands
from risk.evaluation.metrics import calibration_slope_intercept, net_benefit, treat_all_net_benefit
from risk.models.policy import ModelPolicy, default_model_policy


def fast_policy(resamples: int = 100) -> ModelPolicy:
    return default_model_policy().updated({"evaluation": {"bootstrap_resamples": resamples}})


class ToyRules:
    """A rule estimator as the harness sees one: tiers from predict(), an ordinal decision_function."""

    def fit(self, X: pd.DataFrame, y: object = None) -> ToyRules:
        self.rule_set_ = "toy"
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return np.digitize(X["x"].to_numpy(), [0.5, 1.5]).astype(float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.array(["green", "yellow", "red"], dtype=object)[self.decision_function(X).astype(int)]


class ToyModel:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-(X["x"].to_numpy() - 3)))
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(11)
    n = 6000
    X = pd.DataFrame({"x": rng.normal(0, 1.2, n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(X["x"] - 3)))).astype(int).to_numpy()
    groups = pd.DataFrame(
        {
            "sex": rng.choice(["M", "F"], n),
            "age_band": age_bands(pd.Series(rng.uniform(35, 90, n)), [35, 55, 65, 75]),
        }
    )
    return X, y, groups


def test_metrics_agree_with_scikit_learn(data: tuple) -> None:
    X, y, groups = data
    rules = RuleBaseline(ToyRules()).fit(X, y)
    result = evaluate({"rules": rules, "model": ToyModel()}, X, y, groups, fast_policy())
    overall = result.overall.set_index("estimator")
    p = ToyModel().predict_proba(X)[:, 1]
    assert overall.at["model", "auroc"] == pytest.approx(roc_auc_score(y, p))
    assert overall.at["model", "auprc"] == pytest.approx(average_precision_score(y, p))
    assert overall.at["model", "brier"] == pytest.approx(brier_score_loss(y, p))
    rule_score = ToyRules().decision_function(X)
    assert overall.at["rules", "auroc"] == pytest.approx(
        roc_auc_score(y, rule_score)
    )  # ties handled as sklearn
    assert overall.at["rules", "auprc"] == pytest.approx(average_precision_score(y, rule_score))
    for name in ("rules", "model"):
        assert overall.at[name, "auroc_low"] < overall.at[name, "auroc"] < overall.at[name, "auroc_high"]
    # The rules' red tier: sensitivity and PPV by hand.
    red = ToyRules().predict(X) == "red"
    assert overall.at["rules", "red_sensitivity"] == pytest.approx(y[red].sum() / y.sum())
    assert overall.at["rules", "red_ppv"] == pytest.approx(y[red].mean())
    # The model's tiers follow the capacity policy.
    assert overall.at["model", "red_share"] == pytest.approx(0.05, abs=1 / len(y))
    assert set(result.subgroups["group"]) == {"sex", "age_band"}
    assert set(result.differences["metric"]) == {"auroc", "auprc"}


def test_bare_rule_estimator_is_evaluated_with_a_note(data: tuple) -> None:
    X, y, _ = data
    result = evaluate({"rules": ToyRules().fit(X)}, X, y, None, fast_policy(20))
    assert "in sample" in " ".join(result.notes)
    assert np.isfinite(result.overall.loc[0, "brier"])


def test_bootstrap_is_reproducible(data: tuple) -> None:
    X, y, _ = data
    first = evaluate({"model": ToyModel()}, X, y, None, fast_policy(30)).overall
    second = evaluate({"model": ToyModel()}, X, y, None, fast_policy(30)).overall
    pd.testing.assert_frame_equal(first, second)


def test_calibration_slope_and_intercept() -> None:
    rng = np.random.default_rng(3)
    lp = rng.normal(-2, 1, 200_000)
    y = (rng.random(len(lp)) < 1 / (1 + np.exp(-lp))).astype(int)
    slope, intercept = calibration_slope_intercept(1 / (1 + np.exp(-lp)), y)
    assert slope == pytest.approx(1, abs=0.03) and intercept == pytest.approx(0, abs=0.03)
    slope, _ = calibration_slope_intercept(1 / (1 + np.exp(-2 * lp)), y)  # over-confident
    assert slope == pytest.approx(0.5, abs=0.03)


def test_net_benefit_by_hand() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.1])
    y = np.array([1, 0, 1, 0])
    thresholds = np.array([0.2, 0.5])
    # t=0.2: treat 3 (TP 2, FP 1): 2/4 - 1/4 * 0.25; t=0.5: treat 2 (TP 1, FP 1): 1/4 - 1/4 * 1
    assert net_benefit(p, y, thresholds) == pytest.approx([0.5 - 0.0625, 0.0])
    assert treat_all_net_benefit(y, thresholds) == pytest.approx([0.5 - 0.5 * 0.25, 0.0])


@pytest.mark.slow
def test_report_is_written_with_plots(data: tuple, tmp_path: Path) -> None:
    X, y, groups = data
    estimators = {
        "rules": RuleBaseline(ToyRules()).fit(X, y),
        "model": ToyModel(),
        "given scores": EstimatorScores(score=X["x"].to_numpy()),
    }
    result = evaluate(estimators, X, y, groups, fast_policy(20))
    report = write_report(result, tmp_path, context={"data": "toy"})
    text = report.read_text(encoding="utf-8")
    for png in ("roc_pr.png", "calibration.png", "decision_curve.png", "tiers.png"):
        assert (tmp_path / png).stat().st_size > 1000 and png in text
    assert "## Closing note" in text and "**model vs rules**" in text and "### sex" in text
    assert pd.read_csv(tmp_path / "overall.csv")["estimator"].tolist() == ["rules", "model", "given scores"]


def test_rule_baseline_fits_a_clone_and_leaves_the_given_estimator_untouched() -> None:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 2.0]})
    given = ToyRules()
    baseline = RuleBaseline(given).fit(X, np.array([0, 0, 1, 1]))
    assert not hasattr(given, "rule_set_")
    assert baseline.rules_ is not given and baseline.rules_.rule_set_ == "toy"
    assert list(baseline.predict_tiers(X)) == ["green", "yellow", "red", "red"]
