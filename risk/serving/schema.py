"""Tables of the serving store (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Readers always go through the one-row `current_run` pointer, so a publish that loads a new run under its
own run_id and then flips the pointer in one short transaction is atomic for every reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite gives naive values back otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# Search terms are compared by byte order so that a prefix range (term >= q AND term < q || U+10FFFF)
# uses the btree index on both backends; PostgreSQL's default locale collation would not.
BinaryText = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
AutoId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER PRIMARY KEY

runs = Table(
    "serving_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("state", String(16), nullable=False),  # loading | published | pruned
    Column("loaded_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime),
    Column("n_persons", Integer, nullable=False, default=0),
    Column("rule_set_version", String(64)),
    Column("model_version", String(64)),
    Column("code_version", String(64)),
    Column("data_fingerprint", String(64)),
    # data + rule set + model + code: the same run_id published with another fingerprint is replaced
    Column("run_fingerprint", String(64)),
)

current_run = Table(
    "serving_current_run",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("run_id", String(64), nullable=False),
)

patients = Table(
    "serving_patients",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("team_id", String(64)),
    Column("township_id", String(64)),
    Column("village_id", String(64)),
    Column("unit_id", String(64)),
    Column("name", Text),
    Column("sex", String(1)),
    Column("age", Float),
    Column("phone", String(32)),
    Column("national_id_masked", String(32)),
    Column("national_id_hash", String(64)),
    Column("conditions", Text),  # JSON list of condition codes
    Column("tier", String(8)),
    Column("tier_rules", String(8)),
    Column("tier_model", String(8)),
    Column("tier_rank", Integer),  # 0 red, 1 yellow, 2 green, 3 unknown: priority-list order
    Column("risk_score", Float),
    Column("reasons", Text),  # JSON list of {id, tier, zh, en}
    Column("model_probability", Float),  # calibrated 12-month adverse-outcome probability
    Column("model_reasons", Text),  # JSON list of {feature, zh, en, log_odds}
    Column("combine_reason", Text),  # why the combined tier is what it is (model policy)
    Column("next_due_on", Date),
    Column("days_overdue", Integer),
    Column("priority", BigInteger),  # the one priority order of every list (risk/tiers/priority.py)
    Column("urgency", Integer),  # rule urgency: 0 none, 1 review, 2 refer, 3 emergency (workload view)
    Column("last_measurements", Text),  # JSON {name: {value, date}}
    Column("bp_series", Text),  # JSON [[date, sbp, dbp], ...]
    Column("glucose_series", Text),  # JSON [[date, test, value], ...]
    Column("rule_set_version", String(64)),
    Column("model_version", String(64)),
    Index("ix_serving_patients_team", "run_id", "team_id", "tier_rank", "days_overdue"),
    Index("ix_serving_patients_nid", "run_id", "national_id_hash"),
)

search_terms = Table(
    "serving_search_terms",
    metadata,
    # The key doubles as the county-wide index; one more index per scope so a scoped prefix search is a
    # single index range scan. WITHOUT ROWID saves SQLite a fourth b-tree to fill on publish.
    Column("run_id", String(64), primary_key=True),
    Column("term", BinaryText, primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("team_id", String(64)),
    Column("township_id", String(64)),
    Index("ix_serving_search_team", "run_id", "team_id", "term"),
    Index("ix_serving_search_township", "run_id", "township_id", "term"),
    sqlite_with_rowid=False,
)

tier_history = Table(
    "serving_tier_history",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("tier", String(8)),
    Column("tier_rules", String(8)),
    Column("tier_model", String(8)),
)

users = Table(
    "serving_users",
    metadata,
    Column("user_id", AutoId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("team_id", String(64)),
    Column("township_id", String(64)),
    Column("token_id", String(32), nullable=False, unique=True),
    Column("token_salt", String(64), nullable=False),
    Column("token_hash", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    # web-page login (added later: nullable, so Alembic adds them to an existing store)
    Column("password_hash", String(256)),
    Column("failed_logins", Integer),
    Column("locked_until", UTCDateTime),
)

sessions = Table(
    "serving_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),  # SHA-256 of the cookie value; never the value
    Column("user_name", String(128), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

audit = Table(
    "serving_audit",
    metadata,
    Column("audit_id", AutoId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("person_id", String(64)),
    Column("run_id", String(64)),
    Column("outcome", String(16), nullable=False),  # ok | denied | not_found
    Column("team_id", String(64)),  # the team asked for (priority lists), refused or not
    Index("ix_serving_audit_person", "person_id", "at"),
    Index("ix_serving_audit_user", "user_name", "at"),
)

call_results = Table(
    # Results of phone follow-up calls (外呼). Not tied to a run's patient rows, so they survive publishing
    # and pruning; run_id records the run that was current when the result was recorded, team/township/
    # village the patient's place then (scope of later reads). result_id is supplied by the client (API,
    # web form) or derived from the row (file import): writing the same result twice adds nothing.
    "serving_call_results",
    metadata,
    Column("result_id", String(64), primary_key=True),
    Column("person_id", String(64), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("team_id", String(64)),
    Column("township_id", String(64)),
    Column("village_id", String(64)),
    Column("called_on", Date, nullable=False),
    Column("result_type", String(32), nullable=False),
    Column("remove_reason", String(32)),
    Column("visit_on", Date),
    Column("sbp", Float),
    Column("dbp", Float),
    Column("fpg", Float),
    Column("note", Text),
    Column("source", String(16), nullable=False),  # api | web | file
    Column("recorded_by", String(128), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_serving_call_results_person", "person_id", "called_on"),
    Index("ix_serving_call_results_called", "called_on"),
)

# Capitation (小包干) township table of one year, stored by `risk report capitation --store URL`: aggregates
# only (no person), one JSON payload per township (and the county row), read by the analyst role.
capitation = Table(
    "serving_capitation",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("township_id", String(64), primary_key=True),
    Column("as_of", Date),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("definitions_version", String(64)),
    Column("payload", Text, nullable=False),
)


call_cascade = Table(
    # The run's monthly call cascade (risk/indicators/cascade.py), already small-cell suppressed: counts
    # only, no person. Loaded by publish from the run's calls/cascade.csv, pruned with the run.
    "serving_call_cascade",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("month", String(8), primary_key=True),
    Column("level", String(16), primary_key=True),
    Column("unit", String(64), primary_key=True),
    Column("step", String(32), primary_key=True),
    Column("result", String(32), primary_key=True),
    Column("numerator", Integer),
    Column("denominator", Integer),
    Column("value", Float),
    Column("suppressed", String(16), nullable=False),
)
