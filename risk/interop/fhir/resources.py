"""Map one FHIR resource (STU3 or R4) to staging rows. Pure functions of the resource and the mappings.

Each mapper returns the rows to stage and an outcome ('mapped', 'ignored', 'unmapped', 'excluded_status'),
or raises Quarantine. Codes that are not in a mapping table are returned so the caller can count them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from risk.interop.fhir.mappings import Mappings
from risk.interop.fhir.parsing import (
    JSON,
    codings,
    first_present,
    parse_date,
    parse_instant,
    reference_id,
    status_code,
)

VITAL_UNITS = {
    "sbp": "mmHg",
    "dbp": "mmHg",
    "heart_rate": "/min",
    "weight_kg": "kg",
    "height_cm": "cm",
    "waist_cm": "cm",
}
DURATION_DAYS = {
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "wk": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "mo": 30.0,
    "month": 30.0,
    "months": 30.0,
    "a": 365.0,
    "year": 365.0,
    "years": 365.0,
    "h": 1 / 24,
}


class Quarantine(Exception):  # noqa: N818 - an outcome, not an error
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Context:
    """What a mapper may look up outside its resource: the bundle's references and referenced Medications."""

    full_urls: dict[str, str] | None = None  # bundle fullUrl -> resource id; None for standalone resources
    medications: dict[str, JSON] = field(default_factory=dict)  # fullUrl / 'Medication/id' -> resource


@dataclass
class Mapped:
    outcome: str
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    codes: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lab_unit_not_accepted: tuple[str, str] | None = None


def _code_tuple(label: str, coding: JSON | None) -> tuple[str, str | None, str | None, str | None]:
    coding = coding or {}
    return (label, coding.get("system"), coding.get("code"), coding.get("display"))


def _subject(resource: JSON, ctx: Context) -> str:
    person = reference_id(resource.get("subject") or resource.get("patient"), ctx.full_urls)
    if not person:
        raise Quarantine("missing_subject")
    return person


def geography_default(person_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Documented deterministic default: one township, villages/units/teams by a stable hash bucket."""
    township = str(settings["township_id"])
    buckets = int(settings["buckets"])
    bucket = int.from_bytes(hashlib.blake2b(person_id.encode(), digest_size=4).digest(), "big") % buckets + 1
    return {
        "township_id": township,
        "village_id": f"{township}-V{bucket:02d}",
        "unit_id": f"{township}-U{bucket:02d}",
        "team_id": f"{township}-T{bucket:02d}",
        "signed_contract": bool(settings["signed_contract"]),
    }


def map_patient(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    sex = {"male": "M", "female": "F"}.get(str(resource.get("gender")))
    if sex is None:
        raise Quarantine("unmapped_gender", f"gender={resource.get('gender')!s:.20}")
    birth, partial = parse_date(resource.get("birthDate"))
    if birth is None:
        raise Quarantine("missing_birth_date")
    notes = ["partial_birth_date_completed"] if partial else []
    death, _ = parse_date(resource.get("deceasedDateTime"))
    if death is None and resource.get("deceasedBoolean") is True:
        notes.append("deceased_without_date")
    phone = next(
        (
            t.get("value")
            for t in resource.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "phone" and t.get("value")
        ),
        None,
    )
    row = {
        "person_id": resource_id,
        "sex": sex,
        "birth_date": birth,
        "phone": phone,
        "death_date": death,
        **geography_default(resource_id, maps.settings["geography_default"]),
    }
    return Mapped("mapped", [("persons", row)], notes=notes)


def _icd10(concept: Any, maps: Mappings) -> tuple[str | None, JSON | None]:
    """(ICD-10 code, first coding) from ICD-10 codings directly, else SNOMED CT through snomed_icd10.csv."""
    found = codings(concept)
    marker = maps.settings["icd10_system_marker"]
    for coding in found:
        if marker in str(coding.get("system", "")).lower() and coding.get("code"):
            return str(coding["code"]).upper(), coding
    for coding in found:
        if coding.get("system") in maps.settings["snomed_systems"]:
            icd10 = maps.snomed_icd10.get(str(coding.get("code")))
            if icd10:
                return icd10, coding
    return None, (found[0] if found else None)


def map_condition(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    if (
        status_code(resource.get("verificationStatus"))
        in maps.settings["conditions"]["excluded_verification"]
    ):
        return Mapped("excluded_status")
    person = _subject(resource, ctx)
    icd10, coding = _icd10(resource.get("code"), maps)
    if icd10 is None:
        return Mapped("unmapped", codes=[_code_tuple("Condition", coding)])
    condition = maps.chronic_condition(icd10)
    onset, partial = parse_date(
        first_present(resource, "onsetDateTime", "onsetPeriod.start", "assertedDate", "recordedDate")
    )
    if onset is None and condition is not None:
        raise Quarantine("missing_onset", f"condition={condition}")
    abatement, _ = parse_date(first_present(resource, "abatementDateTime", "abatementPeriod.end"))
    notes = ["partial_onset_completed"] if partial else []
    notes.append("condition_registered" if condition else "condition_not_chronic_kept_as_dx")
    row = {
        "person_id": person,
        "condition": condition,
        "icd10": icd10,
        "onset": onset,
        "abatement": abatement,
        "encounter_id": reference_id(resource.get("context") or resource.get("encounter"), ctx.full_urls),
    }
    return Mapped("mapped", [("conditions", row)], notes=notes)


def _loinc_target(concept: Any, maps: Mappings) -> tuple[str | None, JSON | None]:
    found = codings(concept)
    for coding in found:
        target = maps.loinc_target.get(str(coding.get("code")))
        if target and coding.get("system") in maps.settings["loinc_systems"]:
            return target, coding
    return None, (found[0] if found else None)


def _vital_value(quantity: Any, column: str, maps: Mappings) -> float:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        raise Quarantine("missing_value", column)
    unit = quantity.get("code") or quantity.get("unit")
    mapping = maps.units.get(str(unit))
    if mapping is None or mapping.contract_unit != VITAL_UNITS[column]:
        raise Quarantine("unmapped_unit", f"{column} in {unit}")
    return float(quantity["value"]) * mapping.factor


def map_observation(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    if resource.get("status") in maps.settings["observations"]["excluded_status"]:
        return Mapped("excluded_status")
    target, coding = _loinc_target(resource.get("code"), maps)
    if target is None:
        return Mapped("unmapped", codes=[_code_tuple("Observation", coding)])
    if target == "ignore":
        return Mapped("ignored", codes=[_code_tuple("Observation", coding)])
    person = _subject(resource, ctx)
    measured_at, _ = parse_instant(
        first_present(resource, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")
    )
    if measured_at is None:
        raise Quarantine("missing_effective_time")
    encounter = reference_id(resource.get("context") or resource.get("encounter"), ctx.full_urls)
    notes: list[str] = []
    if target == "bp_panel" or target.startswith("vitals."):
        row: dict[str, Any] = {"person_id": person, "measured_at": measured_at, "encounter_id": encounter}
        if target == "bp_panel":
            for component in resource.get("component") or []:
                part, _ = _loinc_target(component.get("code"), maps)
                if part in ("vitals.sbp", "vitals.dbp"):
                    row[part[7:]] = _vital_value(component.get("valueQuantity"), part[7:], maps)
            if row.get("sbp") is None or row.get("dbp") is None:
                raise Quarantine("missing_value", "blood-pressure panel without systolic and diastolic")
        else:
            row[target[7:]] = _vital_value(resource.get("valueQuantity"), target[7:], maps)
        return Mapped("mapped", [("vitals", row)])
    test = target[5:]
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        raise Quarantine("missing_value", test)
    if quantity.get("comparator"):
        notes.append("lab_value_with_comparator")
    raw_unit = str(quantity.get("code") or quantity.get("unit") or "")
    mapping = maps.units.get(raw_unit)
    unit = mapping.contract_unit if mapping else raw_unit
    mapped = Mapped(
        "mapped",
        [
            (
                "labs",
                {
                    "person_id": person,
                    "measured_at": measured_at,
                    "test": test,
                    "value": float(quantity["value"]),
                    "unit": unit,
                    "encounter_id": encounter,
                },
            )
        ],
        notes=notes,
    )
    if unit not in maps.lab_accepted_units[test]:
        mapped.lab_unit_not_accepted = (test, unit)
    return mapped


def _first_code(value: Any) -> JSON | None:
    if isinstance(value, list):  # R5: Encounter.class is a list of CodeableConcept
        value = value[0] if value else None
    found = codings(value)
    return found[0] if found else None


def map_encounter(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    if resource.get("status") in maps.settings["encounters"]["excluded_status"]:
        return Mapped("excluded_status")
    person = _subject(resource, ctx)
    class_coding = _first_code(resource.get("class"))
    klass = maps.encounter_class.get(str((class_coding or {}).get("code")))
    if klass is None:
        return Mapped("unmapped", codes=[_code_tuple("Encounter.class", class_coding)])
    admitted, _ = parse_date(first_present(resource, "period.start", "actualPeriod.start"))
    if admitted is None:
        raise Quarantine("missing_period_start")
    discharged, _ = parse_date(first_present(resource, "period.end", "actualPeriod.end"))
    codes = []
    reasons = []
    for concept in (resource.get("reasonCode") or []) + (resource.get("reason") or []):
        icd10, coding = _icd10(concept, maps)
        if icd10:
            reasons.append(icd10)
        else:
            codes.append(_code_tuple("Encounter.reason", coding))
    type_dx = None
    for concept in resource.get("type") or []:
        type_dx, _ = _icd10(concept, maps)
        if type_dx:
            break
    row = {
        "encounter_id": resource_id,
        "person_id": person,
        "setting": klass.setting,
        "facility_level": klass.facility_level,
        "vitals_source": klass.vitals_source,
        "admitted_on": admitted,
        "discharged_on": discharged,
        "reason_dx": reasons[0] if reasons else None,
        "other_reason_dx": ";".join(dict.fromkeys(reasons[1:])) or None,
        "type_dx": type_dx,
    }
    return Mapped("mapped", [("encounters", row)], codes=codes)


def _medication_atc(concept: Any, maps: Mappings) -> tuple[str | None, JSON | None]:
    found = codings(concept)
    for coding in found:
        if coding.get("system") in maps.settings["atc_systems"] and coding.get("code"):
            return str(coding["code"]).upper(), coding
    for coding in found:
        if coding.get("system") in maps.settings["rxnorm_systems"]:
            atc = maps.rxnorm_atc.get(str(coding.get("code")))
            if atc:
                return atc, coding
    return None, (found[0] if found else None)


def _days_supply(resource: JSON, maps: Mappings) -> tuple[int, list[str]]:
    settings = maps.settings["prescriptions"]
    quantity = first_present(resource, "daysSupply", "dispenseRequest.expectedSupplyDuration")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return int(settings["default_days_supply"]), ["days_supply_defaulted"]
    unit = str(quantity.get("code") or quantity.get("unit") or "d").lower()
    factor = DURATION_DAYS.get(unit)
    if factor is None:
        raise Quarantine("unmapped_unit", f"supply duration in {unit}")
    days = math.ceil(float(quantity["value"]) * factor)
    clipped = min(max(days, 1), int(settings["max_days_supply"]))
    return clipped, (["days_supply_clipped"] if clipped != days else [])


def map_medication_order(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    """MedicationRequest (authoredOn) and MedicationDispense (whenHandedOver) -> one prescription."""
    rtype = str(resource.get("resourceType"))
    if resource.get("status") in maps.settings["prescriptions"]["excluded_status"]:
        return Mapped("excluded_status")
    person = _subject(resource, ctx)
    dispensed, _ = parse_date(first_present(resource, "whenHandedOver", "whenPrepared", "authoredOn"))
    if dispensed is None:
        raise Quarantine("missing_date")
    days, notes = _days_supply(resource, maps)
    medication = resource.get("medication")  # R5 CodeableReference
    concept = resource.get("medicationCodeableConcept") or (
        medication if isinstance(medication, dict) and "concept" in medication else None
    )
    reference = resource.get("medicationReference") or (
        medication.get("reference") if isinstance(medication, dict) else None
    )
    if concept is None and reference is not None:
        ref_text = reference.get("reference") if isinstance(reference, dict) else None
        target = ctx.medications.get(str(ref_text))
        if target is None and ctx.full_urls is None:
            # Standalone resource (NDJSON): the Medication may sit in another file; resolved in finalize.
            row = {
                "person_id": person,
                "dispensed_on": dispensed,
                "atc_code": None,
                "rxnorm_code": None,
                "medication_ref": reference_id(reference),
                "days_supply": days,
                "drug_name": None,
            }
            return Mapped("mapped", [("prescriptions", row)], notes=[*notes, "medication_reference_deferred"])
        if target is None:
            raise Quarantine("unresolved_medication_reference", str(ref_text)[:80])
        concept = target.get("code")
    atc, coding = _medication_atc(concept, maps)
    if atc is None:
        return Mapped("unmapped", codes=[_code_tuple(rtype, coding)])
    row = {
        "person_id": person,
        "dispensed_on": dispensed,
        "atc_code": atc,
        "rxnorm_code": (coding or {}).get("code"),
        "medication_ref": None,
        "days_supply": days,
        "drug_name": (coding or {}).get("display") or (concept or {}).get("text"),
    }
    return Mapped("mapped", [("prescriptions", row)], notes=notes)


def map_medication(resource: JSON, resource_id: str, ctx: Context, maps: Mappings) -> Mapped:
    """A standalone Medication (NDJSON) is staged for references resolved in finalize."""
    atc, coding = _medication_atc(resource.get("code"), maps)
    coding = coding or {}
    row = {
        "medication_id": resource_id,
        "atc_code": atc,
        "system": coding.get("system"),
        "code": coding.get("code"),
        "display": coding.get("display") or (resource.get("code") or {}).get("text"),
    }
    return Mapped("mapped", [("medications", row)])


Mapper = Callable[[JSON, str, Context, Mappings], Mapped]

MAPPERS: dict[str, Mapper] = {
    "Patient": map_patient,
    "Condition": map_condition,
    "Observation": map_observation,
    "Encounter": map_encounter,
    "MedicationRequest": map_medication_order,
    "MedicationDispense": map_medication_order,
    "Medication": map_medication,
}
