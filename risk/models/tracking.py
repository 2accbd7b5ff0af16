"""MLflow tracking: every training run logs parameters, metrics, plots, the feature list, the data snapshot's
fingerprint and the code version; the models are logged and registered.

Tracking store: --tracking-uri, else MLFLOW_TRACKING_URI, else a local SQLite store ./mlruns/mlflow.db with
artifacts in ./mlruns/artifacts (works offline; the model registry needs a database-backed store).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_STORE_DIR = Path("mlruns")


def default_tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    DEFAULT_STORE_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE_DIR / 'mlflow.db').resolve()}"


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts next to a local SQLite store, so a temporary store keeps everything in one folder."""
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db_path.parent / "artifacts").resolve().as_uri()
    return None


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    tracking_uri: str
    model_versions: dict[str, str]  # registered model name -> version


def _requirements() -> list[str]:
    import joblib
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"joblib=={joblib.__version__}",
    ]


def log_training_run(
    *,
    tracking_uri: str | None,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifact_dir: Path | None,
    feature_list: list[str],
    models: dict[str, Any],
    registered_names: dict[str, str],
    example: pd.DataFrame | None = None,
) -> TrackedRun:
    """One MLflow run: params, metrics, tags, report folder, feature list; models logged and registered."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(experiment, artifact_location=local_artifact_root(uri))
    )
    versions: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mlflow's own deprecation chatter is not the user's concern
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
            clean = {
                re.sub(r"[^A-Za-z0-9_\-. :/]", "_", k): float(v)
                for k, v in metrics.items()
                if v is not None and np.isfinite(v)
            }
            mlflow.log_metrics(clean)
            mlflow.set_tags(tags)
            mlflow.log_dict({"feature_columns": feature_list}, "feature_list.json")
            if artifact_dir is not None:
                mlflow.log_artifacts(str(artifact_dir), artifact_path="report")
            for name, model in models.items():
                signature = None
                if example is not None:
                    signature = infer_signature(example, model.predict_proba(example)[:, 1])
                info = mlflow.sklearn.log_model(
                    model,
                    name=name,
                    registered_model_name=registered_names.get(name),
                    signature=signature,
                    pip_requirements=_requirements(),
                    pyfunc_predict_fn="predict_proba",
                    serialization_format="pickle",
                )
                if registered_names.get(name) and info.registered_model_version is not None:
                    versions[registered_names[name]] = str(info.registered_model_version)
    log.info("MLflow run %s in %s", run.info.run_id, uri)
    return TrackedRun(run.info.run_id, experiment_id, uri, versions)
