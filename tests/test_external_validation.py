"""External validation: the same estimators on the development population and on another one, side by side
(discrimination, calibration-in-the-large, calibration slope)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from risk.evaluation import EstimatorScores, evaluate
from risk.evaluation.external import render_markdown, validation_table
from risk.models.policy import ModelPolicy, default_model_policy


def fast_policy() -> ModelPolicy:
    return default_model_policy().updated(
        {"evaluation": {"bootstrap_resamples": 20}, "training": {"gradient_boosting": {"max_iter": 30}}}
    )


def test_a_shifted_population_shows_in_calibration_in_the_large_not_in_discrimination() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    lp = rng.normal(-2.5, 1.0, size=n)
    p = expit(lp)
    y_internal = rng.random(n) < p
    y_external = rng.random(n) < expit(lp + 1.0)  # same ranking, higher baseline risk
    y_spread = rng.random(n) < expit(-2.5 + 0.5 * (lp + 2.5))  # predictions too extreme there
    scores = {"model": EstimatorScores(score=p, probability=p)}
    policy = fast_policy()
    table = validation_table(
        {
            "internal": evaluate(scores, None, y_internal, None, policy),
            "external": evaluate(scores, None, y_external, None, policy),
            "flatter": evaluate(scores, None, y_spread, None, policy),
        }
    ).set_index("validation")
    assert abs(table.at["internal", "calibration_intercept"]) < 0.1
    assert 0.8 < table.at["external", "calibration_intercept"] < 1.2
    assert abs(table.at["internal", "auroc"] - table.at["external", "auroc"]) < 0.03
    assert abs(table.at["internal", "calibration_slope"] - 1) < 0.1
    assert 0.4 < table.at["flatter", "calibration_slope"] < 0.6
    text = render_markdown(table.reset_index(), "External validation")
    assert "| external | model |" in text and "calibration slope" in text


@pytest.mark.slow
def test_train_county_reports_external_validation(small_county: Path, tmp_path: Path) -> None:
    from pipelines.train import train_county
    from risk.synth import SynthConfig, generate_county
    from risk.validate import validate_folder

    validate_folder(small_county, tmp_path / "dev", as_of=date(2025, 1, 1))
    other = tmp_path / "other_raw"
    generate_county(
        SynthConfig(
            persons=4_000, seed=9, start=date(2021, 1, 1), end=date(2024, 12, 31), profile="urban_south"
        ),
        other,
    )
    validate_folder(other, tmp_path / "other", as_of=date(2025, 1, 1))
    result = train_county(
        tmp_path / "dev",
        tmp_path / "out",
        snapshots=2,
        track=False,
        policy=fast_policy(),
        external_dir=tmp_path / "other",
    )
    table = result.summary["external_validation"]
    assert set(table["validation"]) == {"internal", "external"}
    assert set(table["estimator"]) == {"rules", "logistic_regression", "gradient_boosting", "combined"}
    internal = table[table["validation"] == "internal"].set_index("estimator")
    overall = result.evaluation.overall.set_index("estimator")
    assert np.allclose(internal["auroc"], overall.loc[internal.index, "auroc"])
    report = (tmp_path / "out" / "report" / "external_validation.md").read_text(encoding="utf-8")
    assert "| external | logistic_regression |" in report
