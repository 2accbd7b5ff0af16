"""No look-ahead: events dated after as_of, of every kind, leave every feature of every person unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from test_features import AS_OF, county

from risk import definitions
from risk.features import compute_features

AFTER = "2024-07-01"


def add_future_events(b) -> None:  # noqa: ANN001 - CanonicalBuilder
    person_ids = [row["person_id"] for row in b.rows["persons"]]
    for row in b.rows["persons"]:
        row["death_date"] = row.get("death_date") or "2024-07-02"
    for row in b.rows["conditions"]:
        row["ended_on"] = row.get("ended_on") or "2024-07-15"
    prefixes = list(definitions.complications()["icd10_prefix"])
    for pid in person_ids:
        b.condition(pid, "hypertension", enrolled_on=AFTER).condition(pid, "copd", enrolled_on=AFTER)
        b.condition(pid, "diabetes_t2", enrolled_on="2024-12-01")
        for stamp in (f"{AFTER} 00:00", "2024-07-01 00:00:01", "2024-12-31 12:00"):
            b.vital(pid, stamp, 210, 125, weight_kg=120, height_cm=150, waist_cm=130, source="home")
            for test in ("fpg", "hba1c", "tc", "hdl_c", "ldl_c", "egfr", "uacr"):
                b.lab(pid, stamp, test, 9.9)
        for day in (AFTER, "2024-08-01"):
            b.follow_up(pid, day, smoker=True, adherence="none", symptoms="headache", adverse_reaction=True)
        b.encounter(
            pid,
            AFTER,
            setting="inpatient",
            discharged_on="2024-07-03",
            facility_level="outside_county",
            primary_dx="I21.0",
            secondary_dx=";".join(prefixes),
            total_cost=9e4,
            fund_paid=6e4,
        )
        b.encounter(pid, "2024-07-02", setting="emergency", primary_dx="E11.5", total_cost=500.0)
        for atc in ("C09AA02", "A10BA02", "C10AA05"):
            b.prescription(pid, AFTER, atc, 90)


def test_events_after_as_of_change_nothing(tmp_path: Path) -> None:
    before = compute_features(county().write(tmp_path / "before"), AS_OF)
    builder = county()
    add_future_events(builder)
    after = compute_features(builder.write(tmp_path / "after"), AS_OF)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_the_future_events_do_matter_later(tmp_path: Path) -> None:
    """Guards the test above: the same future events change features when as_of moves past them."""
    from datetime import date

    later = date(2024, 7, 1)
    before = compute_features(county().write(tmp_path / "before"), later).set_index("person_id")
    builder = county()
    add_future_events(builder)
    after = compute_features(builder.write(tmp_path / "after"), later).set_index("person_id")
    assert set(after.index) > set(before.index)  # newly enrolled persons appear
    common = before.index
    changed = [c for c in before.columns if not before[c].equals(after.loc[common, c])]
    for column in (
        "bp_last_sbp",
        "fpg_last",
        "fu_last_date",
        "enc_inpatient_12m",
        "cx_coronary",
        "pdc_statin_12m",
        "waist_last",
        "n_chronic_conditions",
        "fu_last_smoker",
    ):
        assert column in changed, column
