"""Synthetic county: outcomes follow the cited equations; care responds to readings; profiles differ as
declared; the latent truth never reaches the features."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk.definitions import synth_profile
from risk.synth import SynthConfig, care, generate_county
from risk.synth.calibration import measure
from risk.synth.context import build_context
from risk.synth.hazards import true_hba1c
from risk.synth.population import make_residents
from risk.synth.trajectories import simulate_course

START, END = date(2021, 1, 1), date(2024, 12, 31)
COURSE_PERSONS = 100_000  # two blocks of residents, latent course only (no tables written): ~3 s


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    """One row per patient: true risk factors at the start and the events of the 4-year course."""
    ctx = build_context(synth_profile("suixi"), START, END, 5, COURSE_PERSONS, 0.0, 0.0)
    frames = []
    for block in range(COURSE_PERSONS // 50_000):
        rng = np.random.default_rng([5, block])
        res = make_residents(ctx, rng, block * 50_000, 50_000)
        body = care.person_measures(rng, res, np.zeros(len(res), dtype=bool))
        course = simulate_course(
            ctx, rng, res, body, lambda idx, r=res, g=rng: care.schedule_visits(ctx, g, r, idx)
        )
        idx = course.idx
        frame = pd.DataFrame(
            {
                "age": res.age0[idx],
                "male": res.male[idx],
                "diabetes": res.dm[idx],
                "tc": body.tc[idx],
                "hdl": body.hdl[idx],
                "egfr": course.egfr[:, 0],
                "hba1c": true_hba1c(course.fpg.mean(axis=1)),
                "registered_htn": res.reg_htn[idx],
                "stepped_up": course.intensified_htn,
                "n_drugs_start": course.n_drugs_htn[:, 0],
                "n_drugs_end": course.n_drugs_htn[:, -1],
            }
        )
        for name, (pat, _) in course.events.items():
            frame[name] = np.bincount(pat, minlength=len(idx)) > 0
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["band"] = (out["age"] // 10) * 10
    return out


def pooled_ratio(frame: pd.DataFrame, factor: str, event: str) -> float:
    """Event rate in the top third of `factor` over the bottom third, within 10-year age bands (pooled with
    Mantel-Haenszel-style weights), so age cannot explain the contrast."""
    top = bottom = 0.0
    for _, band in frame.groupby("band"):
        if len(band) < 200:
            continue
        low, high = band[factor].quantile([1 / 3, 2 / 3])
        a, b = band[band[factor] <= low], band[band[factor] >= high]
        weight = len(a) * len(b) / (len(a) + len(b))
        top += weight * b[event].mean()
        bottom += weight * a[event].mean()
    return top / bottom


def test_ascvd_rises_with_total_cholesterol_and_falls_with_hdl_within_age_bands(
    patients: pd.DataFrame,
) -> None:
    # China-PAR: ln TC +0.621 (men), ln HDL-C -0.695 (men); tertile contrasts ~ x1.2 and x0.75.
    adults = patients[patients["age"] >= 35]
    assert pooled_ratio(adults, "tc", "ascvd") > 1.08
    assert pooled_ratio(adults[adults["male"]], "tc", "ascvd") > 1.1
    assert pooled_ratio(adults, "hdl", "ascvd") < 0.85


def test_kidney_events_fall_with_egfr_and_microvascular_rise_with_hba1c(patients: pd.DataFrame) -> None:
    assert pooled_ratio(patients, "egfr", "kidney") < 0.7  # KDIGO grid
    diabetics = patients[patients["diabetes"]]
    assert pooled_ratio(diabetics, "hba1c", "microvascular") > 1.8  # UKPDS 35: x1.59 per 1 % HbA1c
    assert not patients.loc[~patients["diabetes"], "microvascular"].any()


def test_treatment_is_stepped_up_after_uncontrolled_visits(patients: pd.DataFrame) -> None:
    managed = patients[patients["registered_htn"]]
    stepped = managed["stepped_up"] > 0
    assert 0.05 < stepped.mean() < 0.6  # therapeutic inertia: most uncontrolled visits change nothing
    assert (managed["n_drugs_end"] >= managed["n_drugs_start"]).all()
    added = managed["n_drugs_end"] - managed["n_drugs_start"]
    # a step-up takes effect the month after the visit (one in the final month is not seen yet)
    assert ((added == managed["stepped_up"]) | (added == managed["stepped_up"] - 1)).all()
    assert (added[stepped] > 0).mean() > 0.9
    assert patients.loc[~patients["registered_htn"], "stepped_up"].eq(0).all()


@pytest.fixture(scope="module")
def counties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("profiles")
    out = {}
    for profile in ("suixi", "urban_south"):
        out[profile] = root / profile
        generate_county(
            SynthConfig(persons=15_000, seed=3, start=START, end=END, profile=profile), out[profile]
        )
    return out


def test_second_profile_differs_in_the_declared_ways(counties: dict[str, Path]) -> None:
    declared = synth_profile("urban_south")["profile"]["declared"]
    rural, urban = measure(counties["suixi"]), measure(counties["urban_south"])
    people = {k: pd.read_parquet(v / "persons.parquet") for k, v in counties.items()}
    labs = {k: len(pd.read_parquet(v / "labs.parquet")) for k, v in counties.items()}
    managed = {k: len(pd.read_parquet(v / "conditions.parquet")) for k, v in counties.items()}
    prescriptions = {k: pd.read_parquet(v / "prescriptions.parquet") for k, v in counties.items()}
    assert set(declared) == {
        "younger",
        "more_urban",
        "lower_hypertension_prevalence",
        "better_bp_control",
        "fewer_admissions",
        "fewer_labs",
        "no_prescriptions",
    }
    assert urban["share aged 65+ (end)"] < rural["share aged 65+ (end)"] - 0.05
    assert people["urban_south"]["urban"].mean() > people["suixi"]["urban"].mean() + 0.3
    assert urban["true hypertension prevalence"] < rural["true hypertension prevalence"] - 0.03
    key = "BP control, managed hypertensives with a reading"
    assert urban[key] > rural[key] + 0.02
    assert urban["admissions per resident-year"] < rural["admissions per resident-year"] - 0.015
    assert labs["urban_south"] / managed["urban_south"] < 0.8 * labs["suixi"] / managed["suixi"]
    assert len(prescriptions["urban_south"]) == 0 and len(prescriptions["suixi"]) > 0
    assert list(prescriptions["urban_south"].columns) == list(prescriptions["suixi"].columns)


def test_follow_ups_at_national_cadence_and_winter_bp(counties: dict[str, Path]) -> None:
    figures = measure(counties["suixi"])
    assert figures["standardised management (>=4 follow-ups), hypertension"] > 0.75
    assert figures["follow-ups per managed hypertensive, final year"] >= 4.0
    vitals = pd.read_parquet(counties["suixi"] / "vitals.parquet").query(
        "source == 'follow_up' and sbp < 260"
    )
    month = pd.to_datetime(vitals["measured_at"]).dt.month
    winter, summer = (
        vitals.loc[month.isin([12, 1, 2]), "sbp"].mean(),
        vitals.loc[month.isin([6, 7, 8]), "sbp"].mean(),
    )
    assert winter - summer > 3.0  # cosine amplitude 4 mmHg: Dec-Feb vs Jun-Aug means differ by ~6.6


def test_an_unknown_profile_is_a_clean_error(tmp_path: Path) -> None:
    from risk.errors import RiskUserError

    with pytest.raises(RiskUserError, match="--profile"):
        generate_county(SynthConfig(persons=10, profile="atlantis"), tmp_path / "x")


@pytest.fixture(scope="module")
def validated(counties: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from risk.validate import validate_folder

    out = tmp_path_factory.mktemp("validated") / "suixi"
    validate_folder(counties["suixi"], out)
    return out


def test_no_truth_column_reaches_the_features(counties: dict[str, Path], validated: Path) -> None:
    from risk.features import compute_features

    county = counties["suixi"]
    truth = pd.read_parquet(county / "_synth" / "truth.parquet")
    canonical = validated / "canonical"
    assert not list(validated.rglob("truth*")), "the generator's truth was copied"
    features = compute_features(canonical, date(2023, 12, 31))
    leaked = (set(truth.columns) - {"person_id"}) & set(features.columns)
    assert not leaked, leaked
    # and no feature column is a copy of a latent quantity (identical values on the same persons)
    joined = features.merge(truth, on="person_id", suffixes=("", "__truth"))
    latent = ["frailty", "true_risk_final_year", "latent_risk", "hazard_ascvd", "sbp_true_end", "tc_true"]
    for column in features.select_dtypes("number").columns:
        for hidden in latent:
            a, b = joined[column].to_numpy(dtype=float), joined[hidden].to_numpy(dtype=float)
            ok = ~np.isnan(a) & ~np.isnan(b)
            assert not (ok.sum() > 50 and np.allclose(a[ok], b[ok])), (column, hidden)


@pytest.mark.slow  # features + labels of a test snapshot: ~8 s on an idle machine
def test_oracle_discriminates_and_the_frailty_costs_something(
    counties: dict[str, Path], validated: Path
) -> None:
    from risk.evaluation.oracle import oracle_report

    report = oracle_report(counties["suixi"], validated, resamples=20)
    assert report.n > 1000 and report.events > 50
    assert 0.65 < report.oracle_auroc < 0.95
    assert report.no_frailty_auroc < report.oracle_auroc  # the unobserved frailty is information lost
    # realised events follow the true risk: top decile far above the bottom one
    assert report.deciles["event_rate"].iloc[-1] > 4 * max(report.deciles["event_rate"].iloc[0], 0.005)
    assert {"age", "bp_last_sbp", "egfr_last"} <= set(report.by_input)
