"""The model artifact the nightly job scores with.

An export folder's <name>/ holds model.joblib, metadata.json and model_card.md; its CURRENT names one.
risk/models/approved/ (package data) is the export folder the nightly job uses by default. Loading checks
that the artifact's feature list and feature-set version match the feature pipeline; a mismatch is
refused with a message saying what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import joblib

from risk.errors import RiskUserError
from risk.models.drift import PROFILE
from risk.models.estimators import CalibratedRiskModel

CURRENT_POINTER = "CURRENT"
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
MODEL_CARD = "model_card.md"


class ModelFeatureMismatch(RiskUserError):
    """The exported model was trained on features the pipeline no longer produces in the same way."""


@dataclass
class ExportedModel:
    estimator: CalibratedRiskModel
    metadata: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])

    @property
    def feature_set_version(self) -> str:
        return str(self.metadata.get("feature_set_version", "unknown"))

    def check_features(
        self, feature_columns: list[str] | Any, feature_set_version: str | None = None
    ) -> None:
        """Refuse to score when the pipeline's features do not match the ones the model was trained on."""
        available = set(map(str, feature_columns))
        missing = [c for c in self.feature_columns if c not in available]
        problems = []
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            problems.append(
                f"the feature pipeline does not produce {len(missing)} feature(s) it needs: {shown}"
            )
        if feature_set_version and self.feature_set_version not in ("unknown", feature_set_version):
            problems.append(
                f"it was trained on feature-set version {self.feature_set_version}, the pipeline is at "
                f"{feature_set_version}"
            )
        if problems:
            raise ModelFeatureMismatch(
                f"model {self.version} ({self.path}) cannot be used: "
                + "; ".join(problems)
                + ". Retrain it with `risk train` and export it, or point the job at a matching model."
            )


def write_exported_model(
    estimator: CalibratedRiskModel,
    metadata: dict[str, Any],
    model_card: str,
    models_dir: Path,
    make_current: bool = True,
    profile: dict[str, Any] | None = None,
) -> Path:
    """Write models_dir/<metadata['version']>/ and (by default) point models_dir/CURRENT at it. `profile`
    (risk/models/drift.py) is the training distribution the nightly job compares the scored data with."""
    folder = Path(models_dir) / str(metadata["version"])
    folder.mkdir(parents=True, exist_ok=True)
    if profile is not None:
        (folder / PROFILE).write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    joblib.dump(estimator, folder / ARTIFACT, compress=3)
    (folder / METADATA).write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (folder / MODEL_CARD).write_text(model_card, encoding="utf-8")
    if make_current:
        (Path(models_dir) / CURRENT_POINTER).write_text(folder.name + "\n", encoding="utf-8")
    return folder


def approved_models_dir() -> Path:
    """The folder of models shipped with the package (CURRENT + one folder per approved version)."""
    return Path(str(resources.files("risk.models") / "approved"))


def resolve_model_folder(models_dir: Path) -> Path:
    models_dir = Path(models_dir)
    if (models_dir / ARTIFACT).is_file():
        return models_dir
    pointer = models_dir / CURRENT_POINTER
    if pointer.is_file():
        folder = models_dir / pointer.read_text(encoding="utf-8").strip()
        if (folder / ARTIFACT).is_file():
            return folder
        raise RiskUserError(f"{pointer} names {folder.name}, which has no {ARTIFACT}")
    raise RiskUserError(
        f"{models_dir}: no exported model ({ARTIFACT} or a {CURRENT_POINTER} file); "
        "run `risk train ... --export models` first"
    )


def load_exported_model(models_dir: Path) -> ExportedModel:
    """The exported model in models_dir (a model folder, or a folder whose CURRENT file names one)."""
    folder = resolve_model_folder(models_dir)
    try:
        metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
        estimator = joblib.load(folder / ARTIFACT)
    except FileNotFoundError as exc:
        raise RiskUserError(f"{folder}: incomplete model export ({exc.filename} missing)") from exc
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the artifact is unusable here
        raise RiskUserError(f"{folder / ARTIFACT}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if not isinstance(estimator, CalibratedRiskModel):
        raise RiskUserError(f"{folder / ARTIFACT}: not a risk model artifact")
    if list(estimator.feature_columns) != list(metadata.get("feature_columns", [])):
        raise RiskUserError(f"{folder}: metadata.json feature list differs from the artifact's")
    return ExportedModel(estimator=estimator, metadata=metadata, path=folder)
