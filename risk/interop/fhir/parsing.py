"""Small readers for FHIR datatypes that differ between STU3 and R4 (references, dates, codings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

JSON = dict[str, Any]


def reference_id(reference: Any, full_urls: dict[str, str] | None = None) -> str | None:
    """Resource id behind a Reference: 'urn:uuid:X' (bundle-local), 'Patient/X', absolute URLs, _history."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference:
        return None
    if full_urls and reference in full_urls:
        return full_urls[reference]
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return reference.rsplit(":", 1)[1]
    parts = [p for p in reference.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if parts else None


def codings(concept: Any) -> list[JSON]:
    """Codings of a CodeableConcept, a bare Coding (STU3/R4 Encounter.class) or a CodeableReference."""
    if not isinstance(concept, dict):
        return []
    if "concept" in concept:  # R5 CodeableReference
        return codings(concept["concept"])
    if "coding" in concept:
        return [c for c in concept["coding"] or [] if isinstance(c, dict)]
    if "code" in concept:
        return [concept]
    return []


def status_code(value: Any) -> str | None:
    """A status that is a plain code in STU3 and a CodeableConcept in R4 (Condition.clinicalStatus...)."""
    if isinstance(value, str):
        return value
    for coding in codings(value):
        if coding.get("code"):
            return str(coding["code"])
    return None


class PartialDate(ValueError):
    """A date with only year or year-month precision."""


def parse_date(value: Any, allow_partial: bool = True) -> tuple[date | None, bool]:
    """(date, was_partial). FHIR dates may be 'YYYY', 'YYYY-MM', 'YYYY-MM-DD' or a full dateTime."""
    if not isinstance(value, str) or len(value) < 4:
        return None, False
    text = value[:10]
    if len(text) == 10:
        return date.fromisoformat(text), False
    if not allow_partial:
        raise PartialDate(value)
    year, _, month = text.partition("-")
    return date(int(year), int(month) if month else 1, 1), True


def parse_instant(value: Any) -> tuple[datetime | None, bool]:
    """(naive local wall-clock datetime, was_partial). The UTC offset is dropped: the local day is kept."""
    if not isinstance(value, str) or len(value) < 4:
        return None, False
    if len(value) <= 10:
        day, partial = parse_date(value)
        return (datetime(day.year, day.month, day.day) if day else None), partial
    text = value.replace("Z", "+00:00")
    return datetime.fromisoformat(text).replace(tzinfo=None), False


def first_present(resource: JSON, *paths: str) -> Any:
    """First non-empty value among dotted paths, e.g. 'effectivePeriod.start'."""
    for path in paths:
        value: Any = resource
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, "", [], {}):
            return value
    return None
