"""The model policy (definitions/model_policy.yaml): training, features, tiering, combining, evaluation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from risk import definitions
from risk.errors import DefinitionError

REQUIRED_SECTIONS = ("training", "features", "tiering", "combine", "explanations", "evaluation")


def load_model_policy(path: Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else definitions.definition_path("model_policy.yaml")
    policy = definitions.load_yaml(path)
    missing = [section for section in REQUIRED_SECTIONS if section not in policy]
    if missing:
        raise DefinitionError(f"{path.name}: missing sections {missing}")
    method = policy["tiering"].get("method")
    if method not in ("capacity", "probability"):
        raise DefinitionError(
            f"{path.name}: tiering.method must be 'capacity' or 'probability', not {method!r}"
        )
    capacity = policy["tiering"].get("capacity", {})
    red, yellow = float(capacity.get("red_share", 0)), float(capacity.get("yellow_share", 0))
    if method == "capacity" and not (red > 0 and yellow >= 0 and red + yellow <= 1):
        raise DefinitionError(f"{path.name}: capacity shares must satisfy 0 < red_share, red + yellow <= 1")
    cutoffs = policy["tiering"].get("probability", {})
    if method == "probability" and not (
        0 < float(cutoffs.get("yellow_at_least", 0)) <= float(cutoffs.get("red_at_least", 0)) <= 1
    ):
        raise DefinitionError(f"{path.name}: need 0 < yellow_at_least <= red_at_least <= 1")
    if int(policy["combine"].get("max_raise_levels", 2)) not in (0, 1, 2):
        raise DefinitionError(f"{path.name}: combine.max_raise_levels must be 0, 1 or 2")
    return policy


@lru_cache(maxsize=1)
def default_model_policy() -> dict[str, Any]:
    return load_model_policy()
