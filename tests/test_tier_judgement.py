"""The harness judges what the list is for (issue 15 item 6): event rate and share by tier with CIs, per
sex, age band and township; events caught in each team's first K at its capacity; rules, model, combined;
in `risk evaluate-tiers` and the `risk train` report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from risk import definitions
from risk.evaluation.tier_judgement import (
    capacity_per_team,
    judge_methods,
    judgement_lines,
    order_within,
)


def _settings(visits: int, weeks: int, share: float = 0.10) -> dict:
    base = definitions.capacity_settings()
    return {
        **base,
        "workload": {**base["workload"], "visits_per_week": visits, "per_unit": {}},
        "evaluation": {"capacity_weeks": weeks, "top_share": share},
    }


def test_capacity_k_is_weekly_capacity_times_weeks_capped_at_the_team():
    team = np.array(["A"] * 30 + ["B"] * 5)
    ks = capacity_per_team(team, _settings(visits=4, weeks=2, share=0.10))
    assert ks["capacity"] == {"A": 8, "B": 5}
    assert ks["top_share"] == {"A": 3, "B": 1}


def test_judge_methods_compares_orders_and_flags_a_subgroup_out_of_order():
    rng = np.random.default_rng(0)
    n = 2000
    team = np.where(np.arange(n) % 2 == 0, "A", "B")
    risk = rng.random(n)
    y = (rng.random(n) < 0.02 + 0.3 * risk**3).astype(int)
    good = np.where(risk > 0.9, "red", np.where(risk > 0.6, "yellow", "green")).astype(object)
    sex = np.where(np.arange(n) % 3 == 0, "F", "M")
    # "bad" colours women upside down
    bad = good.copy()
    flip = {"red": "green", "green": "red", "yellow": "yellow"}
    bad[sex == "F"] = [flip[t] for t in good[sex == "F"]]
    groups = pd.DataFrame({"sex": sex, "age_band": "55-64", "township": "T1"})
    orders = {"good": order_within(team, -risk), "bad": order_within(team, risk)}
    judged = judge_methods({"good": good, "bad": bad}, y, groups, orders, team, _settings(visits=10, weeks=2))
    good_j, bad_j = judged["methods"]["good"], judged["methods"]["bad"]
    assert not [v for v in good_j["violations"] if v.startswith("sex")]
    assert any(v.startswith("sex=F") for v in bad_j["violations"])
    # each team sees 20 (10 a week x 2 weeks): the risk order catches more events than the reverse
    assert good_j["capture"]["capacity"]["seen"] == 40
    assert good_j["capture"]["capacity"]["events_captured"] > bad_j["capture"]["capacity"]["events_captured"]
    table = judged["table"]
    assert set(table["method"]) == {"good", "bad"} and {"low", "high"} <= set(table.columns)
    lines = "\n".join(judgement_lines(judged))
    assert "| good |" in lines and "sex=F" in lines


def test_evaluate_tiers_command_on_the_small_county(small_run, tmp_path):
    from typer.testing import CliRunner

    from risk.cli import app

    out = tmp_path / "judge"
    result = CliRunner().invoke(
        app, ["evaluate-tiers", str(small_run), "--as-of", "2023-06-30", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tier_judgement.json").read_text(encoding="utf-8"))
    assert set(summary["methods"]) >= {"rules"}
    table = pd.read_csv(out / "tier_judgement.csv")
    assert set(table["group"]) == {"all", "sex", "age_band", "township"}
    overall = table[(table["group"] == "all") & (table["method"] == "rules")]
    assert overall["n"].sum() == summary["n"] and overall["events"].sum() == summary["events"]
    assert "capacity" in summary["methods"]["rules"]["capture"]
    assert "tier judgement" in (out / "tier_judgement.md").read_text(encoding="utf-8")
    # the outcome of a date too late is not known yet: a clean error
    late = CliRunner().invoke(
        app, ["evaluate-tiers", str(small_run), "--as-of", "2024-06-30", "--out", str(tmp_path / "late")]
    )
    assert late.exit_code == 2 and "not yet known" in late.output
