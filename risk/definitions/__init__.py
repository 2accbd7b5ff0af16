"""Versioned definitions kept as data (YAML / CSV) so a county can review and edit them.

Every consumer loads definitions through this module so there is exactly one place each is read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from risk.errors import DefinitionError

if TYPE_CHECKING:  # pandas is imported where a CSV is read as a frame: `risk features` does not need it
    import pandas as pd

DEFINITIONS_DIR = Path(str(resources.files("risk.definitions")))


def definition_path(name: str) -> Path:
    return DEFINITIONS_DIR / name


# libyaml's safe loader when PyYAML was built with it: parsing contract.yaml in pure Python took 60 ms,
# a visible share of a small county's feature stage.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_SAFE_LOADER)
    except FileNotFoundError as exc:
        raise DefinitionError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DefinitionError(f"{path}: expected a mapping at the top level")
    return data


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool
    nullable: bool
    allowed: tuple[str, ...] | None = None
    value_set: str | None = None
    range: tuple[float, float] | None = None
    format: str | None = None
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    key: tuple[str, ...]
    columns: dict[str, ColumnSpec] = field(default_factory=dict)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.required]


@dataclass(frozen=True)
class Contract:
    version: str
    tables: dict[str, TableSpec]


# Contract column type -> SQL type (DuckDB names; sqlglot maps them for Spark).
SQL_TYPES = {
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}
COLUMN_TYPES = set(SQL_TYPES)


@lru_cache(maxsize=1)
def contract() -> Contract:
    raw = load_yaml(definition_path("contract.yaml"))
    tables: dict[str, TableSpec] = {}
    for table_name, spec in raw["tables"].items():
        columns = {}
        for col_name, col in spec["columns"].items():
            if col["type"] not in COLUMN_TYPES:
                raise DefinitionError(
                    f"contract.yaml: {table_name}.{col_name} has unknown type {col['type']}"
                )
            columns[col_name] = ColumnSpec(
                name=col_name,
                type=col["type"],
                required=bool(col.get("required", False)),
                nullable=bool(col.get("nullable", True)),
                allowed=tuple(col["allowed"]) if "allowed" in col else None,
                value_set=col.get("value_set"),
                range=tuple(col["range"]) if "range" in col else None,
                format=col.get("format"),
                unit=col.get("unit"),
                description=col.get("description", ""),
            )
        tables[table_name] = TableSpec(table_name, spec.get("description", ""), tuple(spec["key"]), columns)
    return Contract(version=str(raw["version"]), tables=tables)


@lru_cache(maxsize=1)
def conditions() -> pd.DataFrame:
    """Chronic-condition value set: code, name_zh, name_en, icd10_prefixes (;-separated), group."""
    import pandas as pd

    return pd.read_csv(definition_path("conditions.csv"), dtype=str)


@lru_cache(maxsize=1)
def complications() -> pd.DataFrame:
    """ICD-10 prefix value sets for complication groups."""
    import pandas as pd

    return pd.read_csv(definition_path("complications.csv"), dtype=str)


@lru_cache(maxsize=1)
def drug_classes() -> pd.DataFrame:
    """ATC prefix -> drug class and indication."""
    import pandas as pd

    return pd.read_csv(definition_path("drug_classes.csv"), dtype=str)


@lru_cache(maxsize=8)
def csv_records(name: str) -> tuple[dict[str, str | None], ...]:
    """A definitions CSV as records of strings, an empty cell as None, without pandas (the value sets of
    `risk features`). Only for our own CSVs: a test checks it against the frames above for every one."""
    with definition_path(name).open(encoding="utf-8", newline="") as handle:
        return tuple({k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(handle))


@lru_cache(maxsize=1)
def lab_units() -> dict[str, Any]:
    return load_yaml(definition_path("lab_units.yaml"))


def value_set(name: str) -> set[str]:
    if name == "conditions":
        return set(conditions()["code"])
    if name == "lab_tests":
        return set(lab_units()["tests"])
    raise DefinitionError(f"unknown value set '{name}'")


@lru_cache(maxsize=1)
def validation_rules() -> dict[str, Any]:
    """Quarantine reason codes (precedence order), formats and date plausibility for `risk validate`."""
    return load_yaml(definition_path("validation.yaml"))


@lru_cache(maxsize=1)
def synth_county() -> dict[str, Any]:
    """Calibration targets and rates of the synthetic county generator (risk/synth)."""
    return load_yaml(definition_path("synth_county.yaml"))


def synth_profiles() -> list[str]:
    """Names of the county profiles of synth_county.yaml."""
    return list(synth_county()["profiles"])


def synth_profile(name: str = "suixi") -> dict[str, Any]:
    """Generator parameters of one county profile: the profile's overrides merged over the base parameters
    (a nested mapping replaces only the keys it names). Unknown names raise KeyError."""
    import copy

    base = synth_county()
    profile = base["profiles"][name]
    merged = deep_merge(copy.deepcopy(base), profile.get("overrides") or {})
    merged["profile"] = {
        "name": name,
        "description": profile.get("description", "").strip(),
        "declared": dict(profile.get("declared") or {}),
    }
    return merged


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


@lru_cache(maxsize=1)
def thresholds() -> dict[str, Any]:
    """Clinical thresholds (BP / FPG control, BP grades, windows); cited in thresholds.yaml."""
    return load_yaml(definition_path("thresholds.yaml"))


@lru_cache(maxsize=1)
def chinapar() -> dict[str, Any]:
    """China-PAR coefficients and baseline survival (Yang et al., Circulation 2016)."""
    return load_yaml(definition_path("chinapar.yaml"))


@lru_cache(maxsize=1)
def feature_definitions() -> dict[str, Any]:
    """The feature catalogue (features.yaml): names, types, units, zh/en descriptions."""
    return load_yaml(definition_path("features.yaml"))


@lru_cache(maxsize=1)
def indicator_definitions() -> dict[str, Any]:
    """Policy indicators (indicators.yaml): cohorts, measures, numerators, targets, sources."""
    return load_yaml(definition_path("indicators.yaml"))


def capacity_settings(path: str | Path | None = None) -> dict[str, Any]:
    """County capacity and red-share settings (capacity.yaml), checked: a bad number is a clean error."""
    data = _default_capacity() if path is None else load_yaml(path)
    where = path or "capacity.yaml"
    workload, red = data.get("workload") or {}, data.get("red_share") or {}
    units = workload.get("unit")
    if isinstance(units, str):
        units = [units]
    if not units or not all(isinstance(u, str) for u in units):
        raise DefinitionError(f"{where}: workload.unit must name one or more columns")
    for key, value in [
        ("workload.visits_per_week", workload.get("visits_per_week")),
        ("workload.weeks", workload.get("weeks")),
        *[(f"workload.per_unit.{k}", v) for k, v in (workload.get("per_unit") or {}).items()],
    ]:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < 0
            or (key == "workload.weeks" and value < 1)
        ):
            raise DefinitionError(f"{where}: {key} must be a whole number >= {1 if 'weeks' in key else 0}")
    maximum = red.get("maximum")
    if not isinstance(maximum, int | float) or isinstance(maximum, bool) or not 0 <= maximum <= 1:
        raise DefinitionError(f"{where}: red_share.maximum must be a share between 0 and 1")
    return {
        **data,
        "workload": {**workload, "unit": list(units), "per_unit": dict(workload.get("per_unit") or {})},
    }


@lru_cache(maxsize=1)
def _default_capacity() -> dict[str, Any]:
    return load_yaml(definition_path("capacity.yaml"))
