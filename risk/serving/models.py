"""Response shapes of the serving API (they make the OpenAPI spec)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class Reason(BaseModel):
    id: str
    tier: str | None = None
    zh: str | None = None
    en: str | None = None


class ModelReason(BaseModel):
    feature: str
    zh: str | None = None
    en: str | None = None
    log_odds: float | None = Field(default=None, description="Contribution to the model's log-odds")


class PatientSummary(BaseModel):
    person_id: str
    name: str | None
    sex: str | None
    age: float | None
    phone_masked: str | None
    phone: str | None = Field(default=None, description="Full number on the team list only (to dial)")
    national_id_masked: str | None = Field(description="Last 2 characters only; the clear ID is never stored")
    team_id: str | None
    township_id: str | None
    village_id: str | None
    tier: str | None = Field(description="Combined tier: red, yellow or green")
    tier_rules: str | None
    tier_model: str | None
    next_due_on: date | None
    days_overdue: int | None
    top_reason: Reason | None


class Measurement(BaseModel):
    value: float | None
    date: str | None = None


class BpReading(BaseModel):
    date: str
    sbp: float | None
    dbp: float | None


class GlucoseReading(BaseModel):
    date: str
    test: str
    value: float | None


class HistoryEntry(BaseModel):
    as_of: date
    run_id: str
    tier: str | None
    tier_rules: str | None
    tier_model: str | None


class PatientView(PatientSummary):
    run_id: str
    as_of: date
    phone: str | None
    unit_id: str | None
    conditions: list[str]
    risk_score: float | None
    reasons: list[Reason]
    model_probability: float | None = Field(
        default=None, description="Calibrated probability of an adverse outcome in the next 12 months")
    model_reasons: list[ModelReason] = Field(default_factory=list)
    combine_reason: str | None = None
    combine_text: dict[str, str] | None = None  # combine_reason as a sentence (zh, en)
    last_measurements: dict[str, Measurement]
    bp_series: list[BpReading]
    glucose_series: list[GlucoseReading]
    history: list[HistoryEntry]
    thresholds: dict[str, float] = Field(description="Control thresholds drawn on the chart (definitions)")
    rule_set_version: str | None
    model_version: str | None


class ErrorDetail(BaseModel):
    detail: str


class SearchRequest(BaseModel):
    q: str = Field(
        min_length=1, max_length=64,
        description="Name, phone or person ID prefix; last 4 of phone; or a full national ID "
                    "(Unicode text without lone surrogates or NUL)",
        json_schema_extra={"pattern": "^[^\\x00]+$"},
    )

    @field_validator("q")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise ValueError("must be Unicode text without lone surrogates or NUL")
        return value


class SearchResult(BaseModel):
    run_id: str
    results: list[PatientSummary]


class PriorityList(BaseModel):
    run_id: str
    team_id: str
    patients: list[PatientSummary]


class WorkloadWeek(BaseModel):
    week: int
    week_start: str
    week_end: str
    capacity: int
    due: int
    red_due: int
    emergencies: int
    planned: int
    planned_red: int
    pushed_to_later_week: int
    over_capacity: bool


class Workload(BaseModel):
    run_id: str
    team_id: str
    summary: dict[str, Any]
    weeks: list[WorkloadWeek]


class TeamCounts(BaseModel):
    township_id: str | None
    team_id: str | None
    counts: dict[str, int]


class Aggregates(BaseModel):
    run_id: str
    totals: dict[str, int]
    by_team: list[TeamCounts]


class Me(BaseModel):
    name: str
    role: str
    team_id: str | None
    township_id: str | None
    scope: str
    patient_level: bool


class Health(BaseModel):
    status: str
    run_id: str | None = None
    as_of: date | None = None
    published_at: datetime | None = None
    persons: int | None = None


class CallResultIn(BaseModel):
    """A call result for one patient. `result` is a code of risk/definitions/call_results.yaml or its
    Chinese or English label (a removal may be given as its reason alone); `result_id` is chosen by the
    client so a retried POST records the result once."""

    result_id: str = Field(min_length=1, max_length=64)
    result: str = Field(min_length=1, max_length=64)
    remove_reason: str | None = Field(default=None, max_length=64)
    called_on: date | None = None
    visit_on: date | None = None
    sbp: float | None = None
    dbp: float | None = None
    fpg: float | None = None
    note: str | None = Field(default=None, max_length=500)
    channel: Literal["api", "web"] = Field(default="api", description="web: recorded on the web page")


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class LoginResult(BaseModel):
    csrf_token: str
    name: str
    role: str
