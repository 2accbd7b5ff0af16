"""Follow-up features when a run feeds call-result visits (pipelines/calls.feed_visit_readings): the visit
counts as a visit, but the answers of the last form come from the last form that asked them.

as_of = 2024-06-30, so the 12-month window is 2023-07-02 .. 2024-06-30.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.calls import feed_visit_readings
from risk.features import compute_features
from risk.run.folder import RunFolder
from tests.support.canonical import CanonicalBuilder

AS_OF = date(2024, 6, 30)
ANSWERS = ["fu_last_smoker", "fu_last_adherence", "fu_last_adverse_reaction", "fu_last_danger_symptoms"]


def county() -> CanonicalBuilder:
    b = CanonicalBuilder()
    # an ordinary form with every answer, then (fed below) a call-result visit with an uncontrolled BP
    b.person("P_CALL").condition("P_CALL", "hypertension")
    b.follow_up(
        "P_CALL", "2024-03-10", smoker=True, adherence="regular", adverse_reaction=True, symptoms="headache"
    )
    b.vital("P_CALL", "2024-03-10 09:00", 130, 80)  # controlled
    # an ordinary later form that left the answers empty: unknown, with or without fed call results
    b.person("P_BLANK").condition("P_BLANK", "hypertension")
    b.follow_up("P_BLANK", "2024-03-10", smoker=True, adherence="regular", adverse_reaction=False)
    b.follow_up("P_BLANK", "2024-06-01")
    # only a call-result visit: it asked nothing
    b.person("P_ONLY").condition("P_ONLY", "hypertension")
    return b


def _results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": ["P_CALL", "P_ONLY"],
            "result_type": ["visited", "visited"],
            "called_on": [date(2024, 6, 20), date(2024, 6, 25)],
            "sbp": [150.0, 128.0],
            "dbp": [95.0, 78.0],
            "fpg": [None, None],
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features before and after the call results are fed to the run's canonical tables."""
    canonical = county().write(tmp_path_factory.mktemp("calls") / "canonical")
    before = compute_features(canonical, AS_OF).set_index("person_id")
    fed = feed_visit_readings(RunFolder.open(canonical.parent), _results(), AS_OF)
    assert fed["follow_ups"] == 2 and fed["vitals"] == 2
    origin = pq.read_table(canonical / "follow_ups.parquet").column("origin").to_pylist()
    assert origin.count("call_result") == 2 and origin.count("input") == 3
    return before, compute_features(canonical, AS_OF).set_index("person_id")


def test_a_call_result_visit_counts_as_a_visit(runs: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    before, after = runs
    assert (
        before.loc["P_CALL", "fu_last_date"] == date(2024, 3, 10)
        and before.loc["P_CALL", "fu_count_12m"] == 1
    )
    row = after.loc["P_CALL"]
    assert row["fu_last_date"] == date(2024, 6, 20) and row["fu_days_since_last"] == 10
    assert row["fu_count_12m"] == 2
    assert row["fu_consecutive_uncontrolled_bp"] == 1  # the call visit's 150/95 after the controlled 03-10
    only = after.loc["P_ONLY"]
    assert only["fu_last_date"] == date(2024, 6, 25) and only["fu_count_12m"] == 1


def test_a_call_result_visit_keeps_the_answers_of_the_last_asked_form(
    runs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    before, after = runs
    row = after.loc["P_CALL"]
    assert bool(row["fu_last_smoker"]) is True and row["fu_last_adherence"] == "regular"
    assert bool(row["fu_last_adverse_reaction"]) is True and bool(row["fu_last_danger_symptoms"]) is True
    assert after.loc["P_CALL", ANSWERS].tolist() == before.loc["P_CALL", ANSWERS].tolist()
    # a patient whose only visit is a call result was never asked: unknown, as a patient without forms
    assert after.loc["P_ONLY", ANSWERS].isna().all()


@pytest.mark.parametrize("which", ["before", "after"])
def test_an_ordinary_form_without_answers_stays_unknown(
    runs: tuple[pd.DataFrame, pd.DataFrame], which: str
) -> None:
    """Without an origin column (before) and with origin = 'input' (after feeding): unchanged semantics."""
    row = dict(zip(["before", "after"], runs, strict=True))[which].loc["P_BLANK"]
    assert row["fu_last_date"] == date(2024, 6, 1)
    assert pd.isna(row["fu_last_smoker"]) and pd.isna(row["fu_last_adherence"])
    assert pd.isna(row["fu_last_adverse_reaction"])
    assert bool(row["fu_last_danger_symptoms"]) is False  # an empty symptoms answer: none reported
