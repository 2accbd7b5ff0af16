"""Mapping tables kept as data under risk/definitions/fhir/, loaded once into lookup dicts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

from risk.definitions import conditions, definition_path, lab_units, load_yaml
from risk.errors import DefinitionError

FHIR_DEFINITIONS = "fhir"


def _table(name: str, key: str, columns: list[str]) -> pd.DataFrame:
    path = definition_path(f"{FHIR_DEFINITIONS}/{name}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise DefinitionError(f"{path}: file not found") from exc
    missing = [c for c in [key, *columns] if c not in frame.columns]
    if missing:
        raise DefinitionError(f"{path}: missing column(s) {', '.join(missing)}")
    duplicated = frame[key][frame[key].duplicated()]
    if len(duplicated):
        raise DefinitionError(f"{path}: duplicated {key} {', '.join(duplicated.unique()[:5])}")
    return frame


@dataclass(frozen=True)
class EncounterClass:
    setting: str
    facility_level: str
    vitals_source: str


@dataclass(frozen=True)
class UnitMapping:
    contract_unit: str
    factor: float


@dataclass(frozen=True)
class Mappings:
    settings: dict[str, Any]
    loinc_target: dict[str, str]
    units: dict[str, UnitMapping]
    snomed_icd10: dict[str, str]
    rxnorm_atc: dict[str, str]
    encounter_class: dict[str, EncounterClass]
    condition_prefixes: tuple[tuple[str, str], ...]  # (icd10 prefix, condition code), longest prefix first
    lab_accepted_units: dict[str, frozenset[str]]

    def chronic_condition(self, icd10: str) -> str | None:
        """Project chronic-condition code for an ICD-10 code via definitions/conditions.csv prefixes."""
        code = icd10.upper()
        for prefix, condition in self.condition_prefixes:
            if code.startswith(prefix):
                return condition
        return None

    def version(self) -> str:
        return str(self.settings.get("version", "unknown"))


def _condition_prefixes() -> tuple[tuple[str, str], ...]:
    pairs = []
    for row in conditions().itertuples():
        for prefix in str(row.icd10_prefixes).split(";"):
            if prefix.strip():
                pairs.append((prefix.strip().upper(), str(row.code)))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


@lru_cache(maxsize=1)
def mappings() -> Mappings:
    settings = load_yaml(definition_path(f"{FHIR_DEFINITIONS}/import.yaml"))
    loinc = _table("loinc.csv", "loinc_code", ["target"])
    units = _table("units.csv", "ucum_code", ["contract_unit", "factor"])
    snomed = _table("snomed_icd10.csv", "snomed_code", ["icd10"])
    rxnorm = _table("rxnorm_atc.csv", "rxnorm_code", ["atc_code"])
    classes = _table("encounter_class.csv", "class_code", ["setting", "facility_level", "vitals_source"])
    tests = lab_units()["tests"]
    for target in loinc["target"]:
        kind, _, name = target.partition(".")
        if target in ("bp_panel", "ignore") or kind == "vitals":
            continue
        if kind != "labs" or name not in tests:
            raise DefinitionError(
                f"fhir/loinc.csv: target '{target}' is not bp_panel, ignore, vitals.* or a lab test"
            )
    return Mappings(
        settings=settings,
        loinc_target=dict(zip(loinc["loinc_code"], loinc["target"], strict=True)),
        units={
            row.ucum_code: UnitMapping(row.contract_unit, float(row.factor)) for row in units.itertuples()
        },
        snomed_icd10=dict(zip(snomed["snomed_code"], snomed["icd10"], strict=True)),
        rxnorm_atc=dict(zip(rxnorm["rxnorm_code"], rxnorm["atc_code"], strict=True)),
        encounter_class={
            row.class_code: EncounterClass(row.setting, row.facility_level, row.vitals_source)
            for row in classes.itertuples()
        },
        condition_prefixes=_condition_prefixes(),
        lab_accepted_units={name: frozenset(spec["units"]) for name, spec in tests.items()},
    )
