"""Call result types, removal reasons, policy and call scripts, read from risk/definitions/ (data)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from risk.definitions import definition_path, load_yaml
from risk.errors import DefinitionError


@dataclass(frozen=True)
class CallPolicy:
    window_days: int
    daily_capacity: int
    remind_after_days: int
    agreed_grace_days: int
    max_failed_attempts: int
    returned_within_days: int
    visit_follow_up_mode: str


@dataclass(frozen=True)
class CallDefinitions:
    version: str
    result_types: dict[str, dict[str, Any]]
    remove_reasons: dict[str, dict[str, Any]]
    policy: CallPolicy
    scripts: dict[str, dict[str, str]]
    scripts_version: str
    lookup: dict[str, tuple[str, str | None]]

    def label(self, code: str | None, language: str = "zh") -> str:
        if not code:
            return ""
        entry = self.result_types.get(code) or self.remove_reasons.get(code) or {}
        return str(entry.get(language, code))

    def parse_result(self, text: Any) -> tuple[str, str | None] | None:
        """(result_type, remove_reason) for a code, a Chinese or English label, or a bare removal reason
        (code or label); None when unrecognised."""
        key = _norm(text)
        if not key:
            return None
        return self.lookup.get(key)

    def parse_reason(self, text: Any) -> str | None:
        hit = self.parse_result(text)
        return hit[1] if hit and hit[0] == "removed" else None


def _norm(text: Any) -> str:
    if text is None:
        return ""
    return " ".join(str(text).strip().lower().replace("_", " ").split())


def _lookup(result_types: dict, remove_reasons: dict) -> dict[str, tuple[str, str | None]]:
    table: dict[str, tuple[str, str | None]] = {}
    for code, entry in result_types.items():
        for name in (code, entry["zh"], entry["en"], *entry.get("aliases", [])):
            table[_norm(name)] = (code, None)
    for code, entry in remove_reasons.items():
        for name in (code, entry["zh"], entry["en"], *entry.get("aliases", [])):
            table.setdefault(_norm(name), ("removed", code))
    return table


@lru_cache(maxsize=1)
def call_definitions() -> CallDefinitions:
    raw = load_yaml(definition_path("call_results.yaml"))
    scripts = load_yaml(definition_path("call_scripts.yaml"))
    try:
        policy = CallPolicy(**{k: raw["policy"][k] for k in CallPolicy.__dataclass_fields__})
    except KeyError as exc:
        raise DefinitionError(f"call_results.yaml: policy lacks {exc}") from exc
    for section in ("result_types", "remove_reasons"):
        for code, entry in raw[section].items():
            if not entry.get("zh") or not entry.get("en"):
                raise DefinitionError(f"call_results.yaml: {section}.{code} needs zh and en labels")
    if "default" not in scripts["scripts"]:
        raise DefinitionError("call_scripts.yaml: a `default` script is required")
    return CallDefinitions(
        version=str(raw["version"]),
        result_types=raw["result_types"],
        remove_reasons=raw["remove_reasons"],
        policy=policy,
        scripts=scripts["scripts"],
        scripts_version=str(scripts["version"]),
        lookup=_lookup(raw["result_types"], raw["remove_reasons"]),
    )
