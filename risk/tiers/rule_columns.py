"""Feature columns a rule condition may use, with the type the rule engine gives them.

The names are the fixed feature contract of docs/architecture.md. Every numeric feature is evaluated as
DOUBLE so that integer counts arriving as floats (pandas turns an int column with a missing value into
float) compare the same way; conditions never need integer arithmetic on features.
"""

from __future__ import annotations

import pyarrow as pa

NUMERIC = "DOUBLE"
BOOLEAN = "BOOLEAN"
TEXT = "VARCHAR"
DATE = "DATE"

FEATURE_COLUMN_TYPES: dict[str, str] = {
    # identity / geography
    "person_id": TEXT, "as_of": DATE, "township_id": TEXT, "village_id": TEXT, "unit_id": TEXT,
    "team_id": TEXT,
    # demographics
    "age": NUMERIC, "sex": TEXT, "signed_contract": BOOLEAN, "family_history_ascvd": BOOLEAN,
    # conditions
    "has_hypertension": BOOLEAN, "has_diabetes_t2": BOOLEAN, "n_chronic_conditions": NUMERIC,
    "enrolled_on": DATE,
    # blood pressure
    "bp_last_sbp": NUMERIC, "bp_last_dbp": NUMERIC, "bp_last_date": DATE, "bp_days_since_last": NUMERIC,
    "bp_mean3_sbp": NUMERIC, "bp_mean3_dbp": NUMERIC, "bp_readings_12m": NUMERIC,
    "bp_controlled_share_12m": NUMERIC, "bp_grade": NUMERIC, "bp_last_controlled": BOOLEAN,
    # glucose
    "fpg_last": NUMERIC, "fpg_last_date": DATE, "hba1c_last": NUMERIC, "hba1c_last_date": DATE,
    "fpg_tests_12m": NUMERIC, "fpg_controlled_share_12m": NUMERIC,
    # follow-ups
    "fu_count_12m": NUMERIC, "fu_last_date": DATE, "fu_days_since_last": NUMERIC,
    "fu_standardised": BOOLEAN, "fu_consecutive_uncontrolled_bp": NUMERIC,
    "fu_consecutive_uncontrolled_fpg": NUMERIC, "fu_last_smoker": BOOLEAN, "fu_last_adherence": TEXT,
    "fu_last_danger_symptoms": BOOLEAN, "fu_last_adverse_reaction": BOOLEAN,
    # encounters, 12 months
    "enc_inpatient_12m": NUMERIC, "enc_bed_days_12m": NUMERIC, "enc_emergency_12m": NUMERIC,
    "enc_readmit30_12m": NUMERIC, "enc_outside_county_share_12m": NUMERIC, "enc_total_cost_12m": NUMERIC,
    "enc_fund_paid_12m": NUMERIC,
    # complications
    "cx_stroke": BOOLEAN, "cx_coronary": BOOLEAN, "cx_heart_failure": BOOLEAN, "cx_ckd": BOOLEAN,
    "cx_retinopathy": BOOLEAN, "cx_neuropathy": BOOLEAN, "cx_diabetic_foot": BOOLEAN,
    "cx_peripheral_arterial": BOOLEAN, "cx_count": NUMERIC, "cx_new_90d": BOOLEAN,
    # medication
    "pdc_antihypertensive_12m": NUMERIC, "pdc_antidiabetic_12m": NUMERIC, "pdc_statin_12m": NUMERIC,
    "antihypertensive_dispensed_12m": BOOLEAN,
    # other measurements
    "tc_last": NUMERIC, "hdl_c_last": NUMERIC, "ldl_c_last": NUMERIC, "egfr_last": NUMERIC,
    "uacr_last": NUMERIC, "bmi_last": NUMERIC, "waist_last": NUMERIC,
    "chinapar_risk_10y": NUMERIC, "chinapar_category": TEXT,
}

ARROW_TYPES: dict[str, pa.DataType] = {
    NUMERIC: pa.float64(), BOOLEAN: pa.bool_(), TEXT: pa.string(), DATE: pa.date32(),
}


_CATALOGUE_TYPES = {"float": NUMERIC, "int": NUMERIC, "bool": BOOLEAN, "string": TEXT, "date": DATE}


def feature_column_types() -> dict[str, str]:
    """The fixed contract above plus any feature the feature catalogue adds later (e.g. `urban`)."""
    types = dict(FEATURE_COLUMN_TYPES)
    try:
        from risk.features.catalogue import feature_catalogue
    except ImportError:  # rules stay usable without the feature layer (tests on hand-made frames)
        return types
    for feature in feature_catalogue():
        types.setdefault(feature.name, _CATALOGUE_TYPES[feature.type])
    return types


def arrow_type(kind: str) -> pa.DataType:
    return ARROW_TYPES[kind]
