"""The feature catalogue: definitions of every feature column, and docs/features.md generated from it."""

from __future__ import annotations

from dataclasses import dataclass

from risk import definitions
from risk.docs import generated
from risk.errors import DefinitionError

FEATURE_TYPES = {"string", "date", "float", "int", "bool"}


@dataclass(frozen=True)
class FeatureDef:
    name: str
    type: str
    group: str
    description_en: str
    description_zh: str
    unit: str | None
    source_tables: tuple[str, ...]


def feature_catalogue() -> list[FeatureDef]:
    """All features in output-column order (definitions/features.yaml)."""
    features = []
    for raw in definitions.feature_definitions()["features"]:
        if raw["type"] not in FEATURE_TYPES:
            raise DefinitionError(f"features.yaml: {raw['name']} has unknown type {raw['type']}")
        features.append(
            FeatureDef(
                name=raw["name"],
                type=raw["type"],
                group=raw["group"],
                description_en=raw["en"],
                description_zh=raw["zh"],
                unit=raw.get("unit"),
                source_tables=tuple(raw.get("source", [])),
            )
        )
    return features


def feature_names() -> list[str]:
    return [f.name for f in feature_catalogue()]


def feature_set_version() -> str:
    return str(definitions.feature_definitions()["version"])


FEATURE_SET_VERSION = feature_set_version()


@generated("features.md")
def features_markdown() -> str:
    t = definitions.thresholds()
    cp = definitions.chinapar()
    lines = [
        "# Feature catalogue",
        "",
        f"Feature set version **{FEATURE_SET_VERSION}**. Generated from `risk/definitions/features.yaml` "
        "by `risk docs`; edit the YAML (and the SQL in `risk/features/sql/`), not this file.",
        "",
        "`risk features INPUT_DIR --as-of YYYY-MM-DD --out FILE.parquet` writes one row per person under "
        "chronic-disease management on the as-of date: a registered "
        f"{' or '.join(definitions.feature_definitions()['managed_conditions'])} condition with "
        "`enrolled_on <= as_of` and (`ended_on` empty or `> as_of`), alive on as_of (`death_date` empty or "
        "`> as_of`). Every feature uses only events on or before as_of (vitals and labs up to the end of "
        "that day); a test adds events after as_of and checks that no feature changes. "
        "`--columns a,b,c` computes only those features (the joins and SQL blocks they do not need are "
        "left out); each value is the one the whole catalogue gives.",
        "",
        f"- 12-month window: (as_of − {t['window_days']} days, as_of].",
        f"- BP controlled: SBP < {t['bp_controlled']['sbp_below']} and DBP < "
        f"{t['bp_controlled']['dbp_below']} mmHg; FPG controlled: < {t['fpg_controlled_below']} mmol/L; "
        "standardised management: ≥ "
        f"{t['follow_up_standard_per_year']} follow-ups in the window; readmission: within "
        f"{t['readmission_days']} days of a discharge (`definitions/thresholds.yaml`, with sources).",
        "- Complications: ICD-10 prefixes in `definitions/complications.csv`, matched on encounter "
        "primary and secondary diagnoses; drug classes for PDC: `definitions/drug_classes.csv`.",
        f"- China-PAR: {cp['citation']} Coefficients and baseline survival in `definitions/chinapar.yaml`; "
        f"Suixi counts as northern China (north of the Huai River). SBP is the last reading, treated = any "
        "antihypertensive dispensing overlapping the window or medication taken at the last follow-up of a "
        "hypertensive; diabetes = registered type 2 diabetes, an antidiabetic dispensing, or last FPG ≥ 7.0.",
        "",
    ]
    group = None
    for feature in feature_catalogue():
        if feature.group != group:
            group = feature.group
            lines += [
                "",
                f"## {group.replace('_', ' ').capitalize()}",
                "",
                "| feature | type | unit | description | 说明 | source |",
                "|---|---|---|---|---|---|",
            ]
        lines.append(
            f"| `{feature.name}` | {feature.type} | {feature.unit or ''} | {feature.description_en} | "
            f"{feature.description_zh} | {', '.join(feature.source_tables)} |"
        )
    lines.append("")
    return "\n".join(lines)
