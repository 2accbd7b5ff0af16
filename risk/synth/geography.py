"""Townships, villages, health-management units and family-doctor teams of the synthetic county."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geography:
    """One row per village; persons are placed in villages by `weight`."""

    township_ids: list[str]
    village_ids: list[str]
    village_township: np.ndarray  # index into township_ids
    village_unit: np.ndarray  # index into unit_ids
    village_team: np.ndarray  # index into team_ids
    unit_ids: list[str]
    team_ids: list[str]
    weight: np.ndarray  # sums to 1
    urban_share: np.ndarray
    township_names: list[str]
    village_names: list[str]
    unit_names: list[str]  # a unit (行政村) is named after its first village

    @property
    def n_villages(self) -> int:
        return len(self.village_ids)


def build_geography(rng: np.random.Generator, params: dict) -> Geography:
    n_town, n_village, n_unit = params["townships"], params["villages"], params["units"]
    if not n_town <= n_unit <= n_village:
        raise ValueError("geography needs townships <= units <= villages")
    # Spread villages evenly over townships (13-14 each for 251 over 18), in a random order.
    per_town = np.full(n_town, n_village // n_town)
    per_town[rng.permutation(n_town)[: n_village % n_town]] += 1
    village_township = np.repeat(np.arange(n_town), per_town)
    number_in_town = np.concatenate([np.arange(k) for k in per_town])
    township_ids = [f"T{t + 1:02d}" for t in range(n_town)]
    village_ids = [
        f"{township_ids[t]}V{k + 1:03d}" for t, k in zip(village_township, number_in_town, strict=True)
    ]

    # Units: n_village - n_unit units hold two neighbouring villages of the same township.
    can_pair = np.flatnonzero(
        (number_in_town[:-1] % 2 == 0) & (village_township[:-1] == village_township[1:])
    )
    paired_first = np.sort(rng.choice(can_pair, size=n_village - n_unit, replace=False))
    starts_unit = np.ones(n_village, dtype=bool)
    starts_unit[paired_first + 1] = False
    village_unit = np.cumsum(starts_unit) - 1

    # Teams ("1+1+1"): walk villages within a township, one team per one or two villages.
    starts_team = np.ones(n_village, dtype=bool)
    for i in range(1, n_village):
        same_town = village_township[i] == village_township[i - 1]
        if same_town and starts_team[i - 1] and rng.random() < params["team_two_village_share"]:
            starts_team[i] = False
    village_team = np.cumsum(starts_team) - 1

    seat = number_in_town == 0
    weight = rng.lognormal(0.0, params["village_size_sigma"], size=n_village) * np.where(seat, 3.0, 1.0)
    urban = np.where(seat, params["town_seat_urban_share"], params["other_urban_share"])
    township_names, village_names = _place_names(rng, params, n_town, n_village)
    unit_first_village = np.flatnonzero(starts_unit)
    return Geography(
        township_ids=township_ids,
        village_ids=village_ids,
        village_township=village_township,
        village_unit=village_unit,
        village_team=village_team,
        unit_ids=[f"U{u + 1:03d}" for u in range(village_unit.max() + 1)],
        team_ids=[f"TM{t + 1:03d}" for t in range(village_team.max() + 1)],
        weight=weight / weight.sum(),
        urban_share=urban,
        township_names=township_names,
        village_names=village_names,
        unit_names=[village_names[v] for v in unit_first_village],
    )


def _place_names(rng: np.random.Generator, params: dict, n_town: int, n_village: int) -> tuple[list, list]:
    """Invented township names from the parameters (numbered when the list is short) and distinct village
    names "<surname><place>村" (numbered when the combinations run out)."""
    listed = list(params.get("township_names", []))
    towns = [listed[t] if t < len(listed) else f"第{t + 1}乡镇" for t in range(n_town)]
    first, second = params.get("village_name_first", ["新"]), params.get("village_name_second", ["庄"])
    combos = [a + b for a in first for b in second]
    order = rng.permutation(len(combos))
    villages = [
        f"{combos[order[v]]}村"
        if v < len(combos)
        else f"{combos[order[v % len(combos)]]}{v // len(combos) + 1}村"
        for v in range(n_village)
    ]
    return towns, villages
