"""The capitation report of one year: budget vs spend per township, unit, tier and month; observed /
expected spend (risk-adjusted, bootstrap interval); projected year-end spend and surplus with an interval,
its split between levels and a what-if. Computed here, rendered by risk/capitation/render.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.capitation.actuals import (
    history_runs,
    member_months,
    observed_months,
    person_months,
    summarise,
    tier_history,
)
from risk.capitation.definitions import CapitationDefinitions, load_capitation
from risk.capitation.expected import (
    MIN_TRAIN,
    Evaluation,
    evaluate_model,
    features_with_tiers,
    label_for,
)
from risk.capitation.settlement import settle_table
from risk.errors import RiskUserError
from risk.indicators.run import open_run
from risk.run.folder import canonical_dir

log = logging.getLogger("risk.capitation")

BY = {"township": "township_id", "unit": "unit_id", "tier": "tier"}
BOOTSTRAP = 400


@dataclass
class CapitationReport:
    year: int
    as_of: date | None
    months_observed: int
    definitions: CapitationDefinitions
    split_name: str | None
    township: pd.DataFrame  # one row per township + county total
    by_unit: pd.DataFrame
    by_tier: pd.DataFrame
    monthly: pd.DataFrame  # township_id (incl. 'county'), month, budget, spend, cumulative columns
    evaluation: Evaluation | None
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    township_names: dict[str, str] = field(default_factory=dict)  # id -> name (optional geography columns)

    @property
    def split(self) -> Any:
        return self.definitions.split(self.year, self.split_name)


def ratio_interval(
    observed: np.ndarray, expected: np.ndarray, resamples: int = BOOTSTRAP, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """O/E = sum(observed) / sum(expected) and a percentile bootstrap interval over persons (Poisson
    weights: each person drawn a Poisson(1) number of times)."""
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    if len(observed) == 0 or expected.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    point = observed.sum() / expected.sum()
    rng = np.random.default_rng(seed)
    weights = rng.poisson(1.0, size=(resamples, len(observed))).astype(float)
    ratios = (weights @ observed) / np.maximum(weights @ expected, 1e-12)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(point), float(low), float(high)


def _expected_per_person(
    canonical: Path, con: Any, defs: CapitationDefinitions, year: int, months_obs: int, notes: list[str]
) -> tuple[pd.DataFrame | None, Evaluation | None, float]:
    """person_id, exp_full, exp_demographic (expected spend in `year`), evaluation, dispersion φ."""
    t0, t1 = date(year - 2, 12, 31), date(year - 1, 12, 31)
    train = features_with_tiers(canonical, t0)
    if len(train) < MIN_TRAIN:
        notes.append(
            f"risk adjustment not available: {len(train)} patients under management on {t0} "
            f"(needs {MIN_TRAIN}; the model is trained on {t0} features -> {year - 1} spend)"
        )
        return None, None, float("nan")
    y_train = label_for(con, defs, train, year - 1)
    apply = features_with_tiers(canonical, t1)
    y_later = label_for(con, defs, apply, year) if months_obs == 12 else None
    model, evaluation = evaluate_model(train, y_train, apply if y_later is not None else None, y_later)
    preds = model.predict(apply)
    # quasi-Poisson dispersion of the full model on the training window: var(y) ~ φ · mean
    fitted = model.predict(train)["full"].to_numpy()
    phi = float(((y_train - fitted) ** 2).sum() / max(fitted.sum(), 1e-9))
    notes.append(
        f"expected spend: gradient boosting (Poisson loss) trained on {len(train):,} patients' features on "
        f"{t0} -> their {year - 1} fund spend, applied to features on {t1}; O/E uses the demographic-and-"
        "condition variant (no prior spend), the projection the full variant"
    )
    out = pd.DataFrame(
        {
            "person_id": apply["person_id"].to_numpy(),
            "exp_full": preds["full"],
            "exp_demographic": preds["demographic"],
        }
    )
    return out, evaluation, phi


def build_capitation_report(
    run_dir: str | Path,
    year: int,
    runs_root: str | Path | None = None,
    definitions_path: str | Path | None = None,
    split: str | None = None,
    what_if: str | None = None,
    seed: int = 0,
) -> CapitationReport:
    started = time.perf_counter()
    defs = load_capitation(definitions_path)
    defs.year(year)
    if split:
        defs.split(year, split)
    scenario = None
    if what_if:
        if what_if not in defs.what_if:
            raise RiskUserError(f"unknown what-if '{what_if}' (defined: {', '.join(defs.what_if) or 'none'})")
        scenario = defs.what_if[what_if]
    elif defs.what_if:
        scenario = next(iter(defs.what_if.values()))
    notes: list[str] = []
    with open_run(run_dir) as run:
        as_of = run.as_of
        if as_of is not None and as_of.year < year:
            raise RiskUserError(f"the run is as of {as_of}: nothing of {year} is known yet")
        months_obs = observed_months(year, as_of)
        if months_obs == 0:
            raise RiskUserError(f"the run is as of {as_of}: no complete month of {year} yet")
        history = tier_history(history_runs(run.path, runs_root))
        rows, tier_note = person_months(run.con, defs, year, months_obs, history, known_on=as_of)
        notes.append(tier_note)
        full_year = member_months(run.con, defs, year, 12, known_on=as_of)
        expected, evaluation, phi = _expected_per_person(
            canonical_dir(run.path), run.con, defs, year, months_obs, notes
        )
        provenance = run.provenance()
        township_names = run.place_names("township")
    if rows.empty:
        raise RiskUserError(f"no pilot patient counts in {year} up to {as_of}")
    provenance["capitation_definitions_version"] = defs.version

    township = summarise(rows, "township_id", months_obs)
    year_budget = full_year.groupby("township_id")["budget"].sum()
    township["budget_year"] = township["township_id"].map(year_budget).fillna(0.0)
    township["budget_ytd_share"] = township["budget_ytd"] / township["budget_year"]

    # per-person observed and expected, observed months only
    person = rows.groupby(["person_id", "township_id"], as_index=False).agg(
        observed=("spend", "sum"), mm=("weight", "sum")
    )
    rest = full_year[full_year["month"] > months_obs].groupby("person_id")["weight"].sum()
    person["mm_rest"] = person["person_id"].map(rest).fillna(0.0)
    # tier held at the last observed month (for the what-if)
    last = rows.sort_values("month").groupby("person_id")["tier"].last()
    person["tier_now"] = person["person_id"].map(last)
    if expected is not None:
        person = person.merge(expected, on="person_id", how="left")
        missing = person["exp_full"].isna()
        if missing.any():
            notes.append(
                f"{int(missing.sum()):,} patients enrolled during {year} had no features on "
                f"{year - 1}-12-31: their expected spend is the mean prediction"
            )
        for column in ("exp_full", "exp_demographic"):
            person[column] = person[column].fillna(person[column].mean())
        person["expected_ytd"] = person["exp_demographic"] * person["mm"] / 12
        person["expected_rest"] = person["exp_full"] * person["mm_rest"] / 12
        person["expected_rest_dem"] = person["exp_demographic"] * person["mm_rest"] / 12
    else:
        # without a model, the rest of the year is expected at the township's own PMPM so far
        pmpm = township.set_index("township_id")["pmpm"]
        person["expected_ytd"] = np.nan
        person["expected_rest"] = person["township_id"].map(pmpm) * person["mm_rest"]
        notes.append("projection without a model: rest of the year at each township's PMPM so far")
        phi = float("nan")

    # rest-of-year inpatient share per tier (observed so far), for the what-if
    tiers_obs = summarise(rows, "tier", months_obs).set_index("tier")
    person["whatif_change"] = 0.0
    if scenario is not None:
        share = person["tier_now"].map(tiers_obs["inpatient_share"]).fillna(0.0)
        hit = person["tier_now"].isin(scenario.tiers)
        person.loc[hit, "whatif_change"] = (
            scenario.admissions_change * share[hit] * person.loc[hit, "expected_rest"]
        )

    oe_rows = []
    for t, group in person.groupby("township_id"):
        o, lo, hi = ratio_interval(group["observed"].to_numpy(), group["expected_ytd"].to_numpy(), seed=seed)
        oe_rows.append({"township_id": t, "oe": o, "oe_low": lo, "oe_high": hi})
    oe = pd.DataFrame(oe_rows)
    township = township.merge(oe, on="township_id", how="left")
    agg = person.groupby("township_id").agg(
        expected_ytd=("expected_ytd", "sum"),
        expected_rest=("expected_rest", "sum"),
        whatif_change=("whatif_change", "sum"),
    )
    township = township.merge(agg, on="township_id", how="left")
    # risk-adjusted budget: the county's budget so far shared by expected spend (demographic variant)
    if expected is not None:
        total_expected = township["expected_ytd"].sum()
        share = township["expected_ytd"] / total_expected
        township["budget_ytd_risk_adjusted"] = township["budget_ytd"].sum() * share
        township["surplus_ytd_risk_adjusted"] = township["budget_ytd_risk_adjusted"] - township["spend"]
    else:
        township["budget_ytd_risk_adjusted"] = np.nan
        township["surplus_ytd_risk_adjusted"] = np.nan

    township["projected_spend"] = township["spend"] + township["expected_rest"]
    sd = np.sqrt(phi * township["expected_rest"]) if np.isfinite(phi) else np.nan
    township["projected_spend_low"] = township["projected_spend"] - 1.96 * sd
    township["projected_spend_high"] = township["projected_spend"] + 1.96 * sd
    township["projected_surplus"] = township["budget_year"] - township["projected_spend"]
    township["projected_surplus_low"] = township["budget_year"] - township["projected_spend_high"]
    township["projected_surplus_high"] = township["budget_year"] - township["projected_spend_low"]
    township["whatif_projected_surplus"] = township["projected_surplus"] - township["whatif_change"]
    if months_obs < 12 and np.isfinite(phi):
        notes.append(
            "projection interval: observed spend + expected rest of year ± 1.96·sqrt(φ·expected rest), "
            f"φ = {phi:,.0f} yuan (quasi-Poisson dispersion of person spend on the training window); "
            "no deaths, moves or new enrolments are projected"
        )
    rule = defs.year(year)
    split_used = defs.split(year, split)
    settled = settle_table(
        township, "budget_year", "projected_spend", split_used, rule.overspend, defs.assessment
    )
    township = pd.concat([township, settled], axis=1)
    if scenario is not None:
        notes.append(f"what-if {scenario.zh} / {scenario.en}: {scenario.assumption}")
    township = _with_county_total(township, phi)

    by_unit = summarise(rows, "unit_id", months_obs)
    by_tier = summarise(rows, "tier", months_obs)
    monthly = _monthly(rows, full_year, months_obs)
    log.info("capitation report %s computed in %.1f s", year, time.perf_counter() - started)
    return CapitationReport(
        year=year,
        as_of=as_of,
        months_observed=months_obs,
        definitions=defs,
        split_name=split,
        township=township,
        by_unit=by_unit,
        by_tier=by_tier,
        monthly=monthly,
        evaluation=evaluation,
        notes=notes,
        provenance=provenance,
        township_names=township_names,
    )


SUM_COLUMNS = [
    "persons",
    "member_months",
    "budget_ytd",
    "spend",
    "spend_inpatient",
    "spend_outside",
    "spend_drugs",
    "surplus_ytd",
    "budget_year",
    "expected_ytd",
    "expected_rest",
    "whatif_change",
    "budget_ytd_risk_adjusted",
    "surplus_ytd_risk_adjusted",
    "projected_spend",
    "projected_surplus",
    "whatif_projected_surplus",
    "surplus",
    "kept",
    "to_fund",
    "reasonable_overspend",
    "unreasonable_overspend",
    "fund_bears",
    "unit_bears",
    "county",
    "township",
    "village",
]


def _with_county_total(township: pd.DataFrame, phi: float) -> pd.DataFrame:
    """Append the county row: sums; ratios recomputed; settlement columns are the sum over townships."""
    total: dict[str, Any] = {c: township[c].sum() for c in SUM_COLUMNS if c in township}
    total["township_id"] = "county"
    total["pmpm"] = total["spend"] / total["member_months"]
    total["burn_rate"] = total["spend"] / total["budget_ytd"]
    total["outside_share"] = total["spend_outside"] / total["spend"] if total["spend"] else np.nan
    total["inpatient_share"] = total["spend_inpatient"] / total["spend"] if total["spend"] else np.nan
    total["budget_ytd_share"] = total["budget_ytd"] / total["budget_year"]
    total["oe"] = total["spend"] / total["expected_ytd"] if total.get("expected_ytd") else np.nan
    sd = np.sqrt(phi * total["expected_rest"]) if np.isfinite(phi) else np.nan
    total["projected_spend_low"] = total["projected_spend"] - 1.96 * sd
    total["projected_spend_high"] = total["projected_spend"] + 1.96 * sd
    total["projected_surplus_low"] = total["budget_year"] - total["projected_spend_high"]
    total["projected_surplus_high"] = total["budget_year"] - total["projected_spend_low"]
    township = township.sort_values("township_id").reset_index(drop=True)
    return pd.concat([township, pd.DataFrame([total])], ignore_index=True)


def _monthly(rows: pd.DataFrame, full_year: pd.DataFrame, months_obs: int) -> pd.DataFrame:
    """Budget and spend per township and month (plus county), cumulative: the burn-down."""
    budget = full_year.groupby(["township_id", "month"])["budget"].sum()
    spend = rows.groupby(["township_id", "month"])["spend"].sum()
    frame = pd.DataFrame({"budget": budget, "spend": spend}).reset_index()
    frame.loc[frame["month"] > months_obs, "spend"] = np.nan
    county = frame.groupby("month", as_index=False)[["budget", "spend"]].sum(min_count=1)
    county["township_id"] = "county"
    frame = pd.concat([frame, county], ignore_index=True).sort_values(["township_id", "month"])
    frame["budget_cum"] = frame.groupby("township_id")["budget"].cumsum()
    frame["spend_cum"] = frame.groupby("township_id")["spend"].cumsum()
    year_budget = frame.groupby("township_id")["budget"].transform("sum")
    frame["budget_remaining"] = year_budget - frame["spend_cum"]
    return frame.reset_index(drop=True)
