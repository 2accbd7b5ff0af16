"""The adverse-outcome definition (definitions/outcomes.yaml) as a typed object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from risk import definitions
from risk.errors import DefinitionError

CODE_RANGE = re.compile(r"^([A-Z])(\d{2})-([A-Z])(\d{2})$")
CODE = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")


@dataclass(frozen=True)
class OutcomeDefinition:
    version: str
    horizon_days: int
    admission_settings: tuple[str, ...]
    admission_codes: dict[str, tuple[str, ...]]  # outcome group -> ICD-10 codes / prefixes
    complication_groups: tuple[str, ...]
    death: bool

    def admission_prefixes(self) -> list[tuple[str, str]]:
        """(group, code prefix) pairs with ranges expanded to three-character categories."""
        return [(group, code) for group, codes in self.admission_codes.items() for code in codes]


def expand_codes(codes: list[str], where: str) -> tuple[str, ...]:
    """'I10-I15' -> I10..I15; single codes ('G45', 'E16.0') kept as prefixes."""
    expanded: list[str] = []
    for raw in codes:
        code = str(raw).strip().upper()
        match = CODE_RANGE.match(code)
        if match:
            first_letter, first, last_letter, last = match.groups()
            if first_letter != last_letter or int(first) > int(last):
                raise DefinitionError(f"{where}: range '{code}' must stay within one letter, low to high")
            expanded += [f"{first_letter}{n:02d}" for n in range(int(first), int(last) + 1)]
        elif CODE.match(code):
            expanded.append(code)
        else:
            raise DefinitionError(f"{where}: '{code}' is neither an ICD-10 code nor a range like I10-I15")
    return tuple(dict.fromkeys(expanded))


def parse_outcome_definition(raw: dict, where: str = "outcomes.yaml") -> OutcomeDefinition:
    try:
        horizon = int(raw["horizon_days"])
        admission = raw["admission"]
        groups = admission["primary_dx"]
        codes = {
            name: expand_codes(spec["codes"], f"{where} admission.{name}") for name, spec in groups.items()
        }
        complication_groups = tuple(raw.get("new_complication", {}).get("groups", []))
    except (KeyError, TypeError) as exc:
        raise DefinitionError(f"{where}: missing or malformed entry {exc}") from exc
    if horizon <= 0:
        raise DefinitionError(f"{where}: horizon_days must be positive")
    known = set(definitions.complications()["group"])
    unknown = sorted(set(complication_groups) - known)
    if unknown:
        raise DefinitionError(f"{where}: unknown complication groups {unknown} (see complications.csv)")
    return OutcomeDefinition(
        version=str(raw.get("version", "unversioned")),
        horizon_days=horizon,
        admission_settings=tuple(admission.get("settings", ["inpatient"])),
        admission_codes=codes,
        complication_groups=complication_groups,
        death=bool(raw.get("death", True)),
    )


@lru_cache(maxsize=4)
def outcome_definition(path: Path | None = None) -> OutcomeDefinition:
    path = path or definitions.definition_path("outcomes.yaml")
    return parse_outcome_definition(definitions.load_yaml(path), where=str(Path(path).name))
