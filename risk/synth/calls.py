"""Synthetic call results for one month (risk demo, tests): village doctors work through the patients
overdue at the start of the month, patients answer, agree, come back or are removed, at the rates of
risk/definitions/synth_calls.yaml. The rows look like a phone platform's export (codes, one row per call)
and go through the ordinary import."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from risk.definitions import definition_path, load_yaml
from risk.errors import DefinitionError

COLUMNS = ["result_id", "person_id", "called_on", "result", "remove_reason", "visit_on", "sbp", "dbp", "fpg"]


@lru_cache(maxsize=1)
def call_behaviour() -> dict[str, Any]:
    raw = load_yaml(definition_path("synth_calls.yaml"))
    for name, entry in raw["rates"].items():
        if "value" not in entry or not entry.get("source"):
            raise DefinitionError(f"synth_calls.yaml: rate {name} needs a value and a source")
    shares = raw["remove_reasons"]["shares"]
    if abs(sum(shares.values()) - 1.0) > 1e-9:
        raise DefinitionError("synth_calls.yaml: remove_reasons shares must add up to 1")
    return raw


def _reading(rng: np.random.Generator, spec: dict[str, float], decimals: int) -> float:
    return round(float(np.clip(rng.normal(spec["mean"], spec["sd"]), spec["min"], spec["max"])), decimals)


def simulate_call_month(
    tiers: pd.DataFrame, persons: pd.DataFrame, month_start: date, month_end: date, seed: int = 1
) -> pd.DataFrame:
    """Call results (columns COLUMNS, codes) for patients with next_due_on before month_start and a phone.

    tiers: person_id, next_due_on (the run scored before the month); persons: person_id, phone."""
    spec = call_behaviour()
    rate = {name: entry["value"] for name, entry in spec["rates"].items()}
    reasons = spec["remove_reasons"]["shares"]
    rng = np.random.default_rng(seed)
    people = tiers[["person_id", "next_due_on"]].merge(persons[["person_id", "phone"]], on="person_id")
    due = pd.to_datetime(people["next_due_on"])
    phone = people["phone"].fillna("").astype(str).str.strip() != ""
    overdue = people[(due < pd.Timestamp(month_start)) & phone].sort_values("person_id")
    rows: list[dict[str, Any]] = []
    last_start = max(0, (month_end - month_start).days - 14)
    for person_id in overdue["person_id"]:
        if rng.random() >= rate["list_completion"]:
            continue
        day = month_start + timedelta(days=int(rng.integers(0, last_start + 1)))
        for _attempt in range(int(rate["max_attempts"])):
            if day > month_end:
                break
            row = dict.fromkeys(COLUMNS)
            row.update(result_id=f"synth-{person_id}-{day.isoformat()}", person_id=person_id, called_on=day)
            if rng.random() >= rate["answer_rate"]:
                rows.append({**row, "result": "remind_to_call_later"})
                day += timedelta(days=int(rate["retry_after_days"]))
                continue
            if rng.random() < rate["removal_when_answered"]:
                reason = str(rng.choice(list(reasons), p=list(reasons.values())))
                rows.append({**row, "result": "removed", "remove_reason": reason})
                break
            if rng.random() >= rate["agree_when_answered"]:
                rows.append({**row, "result": "remind_to_call_later"})
                day += timedelta(days=int(rate["retry_after_days"]))
                continue
            low, high = rate["visit_delay_days"]
            visit_on = day + timedelta(days=int(rng.integers(low, high + 1)))
            rows.append({**row, "result": "agreed_to_visit", "visit_on": visit_on})
            if rng.random() < rate["return_when_agreed"]:
                late_low, late_high = rate["late_days"]
                came = visit_on + timedelta(days=int(rng.integers(late_low, late_high + 1)))
                if came <= month_end:
                    readings = spec["readings"]
                    rows.append(
                        {
                            **dict.fromkeys(COLUMNS),
                            "result_id": f"synth-{person_id}-{came.isoformat()}-visit",
                            "person_id": person_id,
                            "called_on": came,
                            "result": "visited",
                            "sbp": _reading(rng, readings["sbp"], 0),
                            "dbp": _reading(rng, readings["dbp"], 0),
                            "fpg": _reading(rng, readings["fpg"], 1),
                        }
                    )
            break
    return pd.DataFrame(rows, columns=COLUMNS)
