"""Outcome labels on hand-made canonical tables: each case is one person with one event."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from risk.errors import DefinitionError, InputFileError
from risk.models.labels import build_outcome_labels, data_end_date
from risk.models.outcomes import expand_codes, outcome_definition
from tests.support.canonical import CanonicalBuilder

AS_OF = date(2023, 6, 30)


def write_canonical(folder: Path, persons: list[dict], encounters: list[dict]) -> Path:
    return CanonicalBuilder.from_rows({"persons": persons, "encounters": encounters}).write(folder)


def encounter(person: str, day: str, dx: str, setting: str = "inpatient", secondary: str | None = None):
    return {
        "encounter_id": f"{person}-{day}-{dx}",
        "person_id": person,
        "setting": setting,
        "admitted_on": day,
        "primary_dx": dx,
        "secondary_dx": secondary,
    }


CASES = {
    # person: (encounters, death_date, expected outcome, which flag)
    "stroke_admission": (
        [encounter("stroke_admission", "2023-09-01", "I63.9")],
        None,
        1,
        "outcome_admission",
    ),
    "ckd_admission": ([encounter("ckd_admission", "2024-06-29", "N18.4")], None, 1, "outcome_admission"),
    "dka_admission": ([encounter("dka_admission", "2023-07-01", "E11.1")], None, 1, "outcome_admission"),
    "hypoglycaemia": ([encounter("hypoglycaemia", "2023-12-01", "E16.0")], None, 1, "outcome_admission"),
    "pneumonia_admission": ([encounter("pneumonia_admission", "2023-09-01", "J18.9")], None, 0, None),
    "outpatient_hypertension": (
        [encounter("outpatient_hypertension", "2023-09-01", "I10", setting="outpatient")],
        None,
        0,
        None,
    ),
    "admission_on_as_of": ([encounter("admission_on_as_of", "2023-06-30", "I21.0")], None, 0, None),
    "admission_after_window": ([encounter("admission_after_window", "2024-06-30", "I21.0")], None, 0, None),
    "new_retinopathy_outpatient": (
        [encounter("new_retinopathy_outpatient", "2024-01-10", "E11.9", "outpatient", "H36.0")],
        None,
        1,
        "outcome_new_complication",
    ),
    "old_retinopathy_again": (
        [
            encounter("old_retinopathy_again", "2022-01-10", "E11.3", "outpatient"),
            encounter("old_retinopathy_again", "2024-01-10", "E11.3", "outpatient"),
        ],
        None,
        0,
        None,
    ),
    "died_in_window": ([], "2024-02-02", 1, "outcome_death"),
    "died_after_window": ([], "2024-08-01", 0, None),
    "nothing": ([], None, 0, None),
}


@pytest.fixture()
def canonical(tmp_path: Path) -> Path:
    persons = [{"person_id": p, "sex": "F", "death_date": death} for p, (_, death, _, _) in CASES.items()]
    encounters = [e for events, _, _, _ in CASES.values() for e in events]
    encounters.append(encounter("nothing", "2025-01-15", "J06.9", "outpatient"))  # data reaches 2025-01-15
    return write_canonical(tmp_path / "canonical", persons, encounters)


def test_each_hand_made_case_gets_its_label(canonical: Path) -> None:
    cohort = pd.DataFrame({"person_id": list(CASES), "as_of": AS_OF})
    labels = build_outcome_labels(canonical, cohort).set_index("person_id")
    for person, (_, _, expected, flag) in CASES.items():
        assert labels.loc[person, "outcome"] == expected, person
        if flag:
            assert labels.loc[person, flag], person
    assert labels.loc["stroke_admission", "outcome_date"] == date(2023, 9, 1)
    assert labels["label_complete"].all()


def test_label_follows_its_own_as_of(canonical: Path) -> None:
    """The same stroke admission is an outcome for a snapshot before it and not for one after it."""
    cohort = pd.DataFrame({"person_id": ["stroke_admission"] * 2, "as_of": [AS_OF, date(2023, 12, 31)]})
    labels = build_outcome_labels(canonical, cohort)
    assert labels["outcome"].tolist() == [1, 0]


def test_incomplete_window_is_flagged(canonical: Path) -> None:
    assert data_end_date(canonical) == date(2025, 1, 15)
    cohort = pd.DataFrame(
        {"person_id": ["nothing", "nothing"], "as_of": [date(2024, 1, 16), date(2024, 1, 17)]}
    )
    labels = build_outcome_labels(canonical, cohort)
    assert labels["label_complete"].tolist() == [True, False]


def test_code_ranges_expand_and_bad_codes_are_refused() -> None:
    assert expand_codes(["I10-I12", "E16.0"], "test") == ("I10", "I11", "I12", "E16.0")
    with pytest.raises(DefinitionError, match="I15-I10"):
        expand_codes(["I15-I10"], "test")
    with pytest.raises(DefinitionError, match="HYPERTENSION"):
        expand_codes(["hypertension"], "test")
    assert outcome_definition().horizon_days == 365


def test_missing_canonical_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="run `risk validate` first"):
        build_outcome_labels(tmp_path, pd.DataFrame({"person_id": ["a"], "as_of": [AS_OF]}))
