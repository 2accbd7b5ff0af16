"""The analyst role reads the capitation (小包干) township table through the API; team roles do not."""

from __future__ import annotations

import math
from datetime import date

import pytest

from risk.serving.capitation import store_capitation
from tests.test_serving import _get, published, store_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")

ROWS = [
    {"township_id": "T00", "budget_year": 1_000_000.0, "spend": 420_000.0, "oe": 1.1, "oe_low": math.nan},
    {"township_id": "T01", "budget_year": 800_000.0, "spend": 390_000.0, "oe": 0.91, "oe_low": 0.8},
    {"township_id": "county", "budget_year": 1_800_000.0, "spend": 810_000.0, "oe": 1.0, "oe_low": None},
]


def test_capitation_table_by_role(published: dict) -> None:  # noqa: F811
    assert _get(published, "analyst", "/api/capitation/2024").status_code == 404  # nothing stored yet
    store_capitation(published["store"], "r1", date(2024, 6, 30), 2024, ROWS, "2026.12.1")
    store_capitation(published["store"], "r1", date(2024, 6, 30), 2024, ROWS, "2026.12.1")  # replaces
    analyst = _get(published, "analyst", "/api/capitation/2024")
    assert analyst.status_code == 200
    body = analyst.json()
    assert [t["township_id"] for t in body["townships"]] == ["T00", "T01", "county"]
    assert body["townships"][0]["oe_low"] is None and body["as_of"] == "2024-06-30"
    assert body["definitions_version"] == "2026.12.1"
    assert _get(published, "county_admin", "/api/capitation/2024").status_code == 200
    town = _get(published, "township", "/api/capitation/2024").json()
    assert [t["township_id"] for t in town["townships"]] == ["T00"]
    assert _get(published, "team", "/api/capitation/2024").status_code == 403
    assert _get(published, "village_doctor", "/api/capitation/2024").status_code == 403
    assert _get(published, None, "/api/capitation/2024").status_code == 401
    assert _get(published, "analyst", "/api/capitation/2023").status_code == 404
