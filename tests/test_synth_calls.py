"""Synthetic call results (issue 16 item 5): only overdue patients with a phone are called, within the
month, every row is a valid result, visits follow an agreement, and the same seed gives the same month."""

from __future__ import annotations

from datetime import date

import pandas as pd

from risk.calls.results import parse_results_frame
from risk.synth.calls import call_behaviour, simulate_call_month

START, END = date(2025, 1, 1), date(2025, 1, 31)


def _county(n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"P{i:04d}" for i in range(n)]
    due = [date(2024, 12, 1) if i % 4 else date(2025, 1, 20) for i in range(n)]
    tiers = pd.DataFrame({"person_id": ids, "next_due_on": due})
    persons = pd.DataFrame({"person_id": ids, "phone": ["" if i % 10 == 1 else "139" for i in range(n)]})
    return tiers, persons


def test_synthetic_month_is_valid_deterministic_and_follows_the_behaviour_model() -> None:
    tiers, persons = _county()
    results = simulate_call_month(tiers, persons, START, END, seed=5)
    assert results.equals(simulate_call_month(tiers, persons, START, END, seed=5))
    parsed, refused = parse_results_frame(results, today=END)
    assert refused.empty and len(parsed) == len(results)
    called = set(results["person_id"])
    eligible = {f"P{i:04d}" for i in range(400) if i % 4 and i % 10 != 1}
    assert called <= eligible and len(called) > 0.6 * len(eligible)
    assert results["called_on"].between(START, END).all()
    visited = results[results["result"] == "visited"]
    agreed = set(results.loc[results["result"] == "agreed_to_visit", "person_id"])
    assert len(visited) > 0 and set(visited["person_id"]) <= agreed
    assert set(results["remove_reason"].dropna()) <= set(call_behaviour()["remove_reasons"]["shares"])
    for entry in call_behaviour()["rates"].values():
        assert entry["source"]
