"""The model policy is one typed, frozen value, validated once when it is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from risk.definitions import definition_path
from risk.errors import DefinitionError
from risk.models.policy import ModelPolicy, default_model_policy, load_model_policy


def _packaged() -> dict:
    return yaml.safe_load(definition_path("model_policy.yaml").read_text(encoding="utf-8"))


def test_the_packaged_policy_reads_into_typed_sections_and_back_to_the_same_mapping() -> None:
    policy = default_model_policy()
    assert isinstance(policy, ModelPolicy)
    assert policy.tiering.capacity.red_share == 0.05 and policy.tiering.capacity.within is None
    assert policy.explanations.top_n == 3 and policy.combine.max_raise_levels == 2
    assert policy.as_dict() == {**_packaged(), "version": str(_packaged()["version"])}


def test_the_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_model_policy().tiering.method = "probability"  # type: ignore[misc]


def test_absent_optional_keys_take_the_one_stated_default(tmp_path: Path) -> None:
    raw = _packaged()
    del raw["explanations"]["top_n"], raw["combine"]["max_raise_levels"], raw["training"]["export"]
    del raw["drift"]  # an optional section
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    policy = load_model_policy(path)
    assert policy.explanations.top_n == 3
    assert policy.combine.max_raise_levels == 2
    assert policy.training.export == "best_auprc"
    assert (policy.drift.psi_refuse_above, policy.drift.bins, policy.drift.min_rows) == (0.25, 10, 200)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tiering": {"method": "quantile"}}, "tiering.method must be one of 'capacity', 'probability'"),
        (
            {"tiering": {"capacity": {"red_share": 0}}},
            "tiering.capacity.red_share must be a number in (0, 1]",
        ),
        ({"tiering": {"capacity": {"red_share": 0.6, "yellow_share": 0.5}}}, "red + yellow <= 1"),
        ({"combine": {"max_raise_levels": 3}}, "combine.max_raise_levels must be one of 0, 1, 2"),
        ({"explanations": {"top_n": "three"}}, "explanations.top_n must be an integer"),
        ({"training": {"calibration_method": "beta"}}, "training.calibration_method must be one of"),
        ({"evaluation": {"bootstrap_resamples": 0}}, "evaluation.bootstrap_resamples must be an integer"),
        ({"tiering": {"capacity": {"redshare": 0.1}}}, "unknown keys ['redshare']"),
        (
            {
                "tiering": {
                    "method": "probability",
                    "probability": {"red_at_least": 0.05, "yellow_at_least": 0.1},
                }
            },
            "yellow_at_least <= red_at_least",
        ),
    ],
)
def test_a_wrong_value_is_refused_naming_its_key(changes: dict, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        default_model_policy().updated(changes)
    assert message in str(caught.value)


def test_a_missing_section_is_refused() -> None:
    raw = _packaged()
    del raw["combine"]
    with pytest.raises(DefinitionError, match=r"missing sections \['combine'\]"):
        ModelPolicy.from_dict(raw)


def test_updated_changes_only_what_it_names() -> None:
    base = default_model_policy()
    changed = base.updated({"training": {"gradient_boosting": {"max_iter": 30}}})
    assert changed.training.gradient_boosting["max_iter"] == 30
    assert (
        changed.training.gradient_boosting["learning_rate"]
        == base.training.gradient_boosting["learning_rate"]
    )
    assert base.training.gradient_boosting["max_iter"] == 300  # the original is untouched
    assert changed.tiering == base.tiering
