"""RunManifest: run.json, typed. Written by the nightly job through RunFolder.write_manifest, read back by
RunFolder.read_manifest (serving publish, call lists, indicators).

Every field but `as_of` may be absent from a run.json written by hand or by the serving demo; the nightly
job writes all of them. `versions` names what produced the run: data_fingerprint, contract, rule_set,
rule_set_fingerprint (hash of the rule file's text: two files with the same version but other content
differ), model, feature_set, code, run_fingerprint, id_key, validation_rules, indicators, and Python and
the main libraries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from risk.errors import InputFileError


@dataclass(frozen=True)
class RunManifest:
    as_of: date
    run_id: str | None = None
    # the run record (pipelines/run_record.py): local start/end time, "succeeded" or "succeeded with
    # warnings", the national-ID key kind ("county" or "development"; never the key)
    started_at: str | None = None
    ended_at: str | None = None
    status: str | None = None
    id_key: str | None = None
    input_dir: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, dict[str, int]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    by_township: dict[str, dict[str, int]] = field(default_factory=dict)
    # one readable line each: refusals overridden by the user, the as-of check, model drift, Python
    # warnings raised during the run, the development ID key
    warnings: list[str] = field(default_factory=list)
    model_drift: dict[str, Any] | None = None  # PSI per model feature (risk/models/drift.py)
    previous_run_as_of: str | None = None
    transitions: dict[str, dict[str, int]] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)  # per unit and week (risk/products/workload)
    red_share: dict[str, Any] = field(default_factory=dict)  # against the county maximum (flag only)
    quarantine_files: list[str] = field(default_factory=list)  # quarantine.parquet, .csv and .xlsx

    # the order of the keys in run.json
    _ORDER = (
        "run_id",
        "as_of",
        "started_at",
        "ended_at",
        "status",
        "id_key",
        "input_dir",
        "versions",
        "validation",
        "counts",
        "by_township",
        "warnings",
        "model_drift",
        "previous_run_as_of",
        "transitions",
        "workload",
        "red_share",
        "quarantine_files",
    )

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["as_of"] = self.as_of.isoformat()
        return {key: values[key] for key in self._ORDER}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "run.json") -> RunManifest:
        if not isinstance(raw, dict) or not raw.get("as_of"):
            raise InputFileError(source, "manifest has no as_of")
        try:
            as_of = date.fromisoformat(str(raw["as_of"])[:10])
        except ValueError as exc:
            raise InputFileError(source, f"as_of is not a date ({raw['as_of']!r})") from exc
        known = {f.name for f in fields(cls)} - {"as_of"}
        return cls(as_of=as_of, **{k: v for k, v in raw.items() if k in known and v is not None})

    def version(self, name: str, default: str | None = None) -> str | None:
        value = self.versions.get(name)
        return default if value is None else str(value)
