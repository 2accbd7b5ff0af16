"""A training run on the small synthetic county: MLflow run and registry entries in a temporary store, the
exported model loads and scores; the generic --table command on a plain CSV."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from risk.models.policy import ModelPolicy, default_model_policy

pytestmark = pytest.mark.slow  # whole training runs


@pytest.fixture(scope="module")
def canonical(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from risk.validate import validate_folder

    out = tmp_path_factory.mktemp("mlflow_county") / "validated"
    validate_folder(small_county, out, as_of=date(2025, 1, 1))
    return out


def fast_policy() -> ModelPolicy:
    return default_model_policy().updated(
        {"evaluation": {"bootstrap_resamples": 20}, "training": {"gradient_boosting": {"max_iter": 30}}}
    )


def test_training_run_is_tracked_registered_and_exported(canonical: Path, tmp_path: Path) -> None:
    import mlflow

    from pipelines.train import train_county
    from risk.features import compute_features
    from risk.tiers.model import check_model_drift, load_exported_model, score_model_tiers

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    result = train_county(
        canonical,
        tmp_path / "out",
        snapshots=2,
        export_dir=tmp_path / "models",
        tracking_uri=uri,
        policy=fast_policy(),
    )

    assert set(result.evaluation.overall["estimator"]) == {
        "rules",
        "logistic_regression",
        "gradient_boosting",
        "combined",
    }
    text = result.report.read_text(encoding="utf-8")
    assert "## Closing note" in text and "**logistic_regression vs rules**" in text
    # the tier judgement of issue 15: rules, the exported model and combined, with CIs and capture
    assert "tier judgement" in text and "| rules |" in text and "| combined |" in text
    judged = pd.read_csv(result.report.parent / "tier_judgement.csv")
    assert {"rules", "model", "combined"} == set(judged["method"])
    assert {"all", "sex", "age_band", "township"} == set(judged["group"])

    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["code_version"] and len(run.data.tags["data_fingerprint"]) == 32
    assert run.data.params["data_fingerprint"] == run.data.tags["data_fingerprint"]
    assert "logistic_regression.auroc" in run.data.metrics and "rules.red_ppv" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"feature_list.json", "report"} <= artifacts
    for name in ("risk-logistic_regression", "risk-gradient_boosting"):
        versions = client.search_model_versions(f"name='{name}'")
        assert [str(v.version) for v in versions] == ["1"] and versions[0].run_id == run.info.run_id

    exported = load_exported_model(tmp_path / "models")
    assert exported.metadata["mlflow_run_id"] == run.info.run_id
    assert exported.metadata["model_kind"] == result.chosen
    card = (exported.path / "model_card.md").read_text(encoding="utf-8")
    for heading in ("## Intended use", "## Data", "## Metrics", "## Subgroup results", "## Limits"):
        assert heading in card
    features = compute_features(canonical, date(2024, 6, 30))
    profile = json.loads((exported.path / "training_profile.json").read_text(encoding="utf-8"))
    assert profile["rows"] == exported.metadata["n_train_rows"]
    assert set(profile["features"]) == set(exported.feature_columns)
    drift = check_model_drift(exported, features, default_model_policy(), accept=True)
    assert set(drift.psi) == set(exported.feature_columns)
    scored = score_model_tiers(exported, features, default_model_policy())
    assert len(scored) == len(features) and scored["model_probability"].between(0, 1).all()


def test_generic_table_command_trains_and_reports(tmp_path: Path) -> None:
    from risk.cli import app

    rng = np.random.default_rng(5)
    n = 3000
    table = pd.DataFrame(
        {
            "patient": [f"id{i}" for i in range(n)],
            "age": rng.uniform(35, 85, n),
            "sex": rng.choice(["M", "F"], n),
            "smoker": rng.random(n) < 0.3,
            "sbp": rng.normal(145, 20, n),
        }
    )
    risk = 1 / (
        1 + np.exp(-(-3 + (table["sbp"] - 145) / 15 + 0.8 * table["smoker"] + (table["age"] - 60) / 20))
    )
    table["admitted"] = (rng.random(n) < risk).map({True: "yes", False: "no"})
    table.loc[rng.random(n) < 0.1, "sbp"] = np.nan
    path = tmp_path / "cohort.csv"
    table.to_csv(path, index=False)

    result = CliRunner().invoke(
        app,
        [
            "train",
            "--table",
            str(path),
            "--label",
            "admitted",
            "--id-column",
            "patient",
            "--out",
            str(tmp_path / "out"),
            "--no-track",
        ],
    )
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report" / "report.md").read_text(encoding="utf-8")
    assert "Rules omitted" in report and "logistic_regression" in report
    overall = pd.read_csv(tmp_path / "out" / "report" / "overall.csv").set_index("estimator")
    assert overall.loc["logistic_regression", "auroc"] > 0.65

    bad = CliRunner().invoke(app, ["train", "--table", str(path), "--label", "missing_column"])
    assert bad.exit_code == 2 and "column 'missing_column'" in bad.output
