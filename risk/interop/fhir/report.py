"""The import report: what was read, mapped, ignored, left unmapped or quarantined, and why."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("read", "mapped", "ignored", "unmapped", "excluded_status", "quarantined")


@dataclass
class ImportReport:
    input: str = ""
    output: str = ""
    elapsed_seconds: float = 0.0
    code_version: str = ""
    definitions_version: str = ""
    contract_version: str = ""
    files_read: int = 0
    files_skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)
    documents_read: int = 0
    bundles_read: int = 0
    documents_quarantined: int = 0
    resources: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    resource_types_not_imported: Counter[str] = field(default_factory=Counter)
    unmapped_codes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    ignored_codes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    rows_written: dict[str, int] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    lab_units_not_accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    primary_dx_source: dict[str, int] = field(default_factory=dict)

    def count(self, resource_type: str, outcome: str, n: int = 1) -> None:
        self.resources[resource_type][outcome] += n

    def unmapped(self, resource_type: str, system: str | None, code: str | None, display: str | None) -> None:
        self.unmapped_codes[(resource_type, system or "", code or "", display or "")] += 1

    def ignored(self, resource_type: str, system: str | None, code: str | None, display: str | None) -> None:
        self.ignored_codes[(resource_type, system or "", code or "", display or "")] += 1

    @staticmethod
    def _codes(counter: Counter[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
        # Display strings vary between sources for one code; the first one seen is kept by the Counter key.
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (rtype, system, code, display), n in counter.items():
            entry = merged.setdefault(
                (rtype, system, code),
                {
                    "resource_type": rtype,
                    "system": system,
                    "code": code,
                    "display": display,
                    "count": 0,
                },
            )
            entry["count"] += n
        return sorted(merged.values(), key=lambda e: (-e["count"], e["resource_type"], e["code"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "code_version": self.code_version,
            "definitions_version": self.definitions_version,
            "contract_version": self.contract_version,
            "files": {
                "read": self.files_read,
                "skipped": self.files_skipped,
                "skipped_examples": self.skipped_files,
            },
            "documents": {
                "read": self.documents_read,
                "bundles": self.bundles_read,
                "quarantined": self.documents_quarantined,
            },
            "resources": {
                rtype: {o: counts.get(o, 0) for o in OUTCOMES}
                for rtype, counts in sorted(self.resources.items())
            },
            "resource_types_not_imported": dict(self.resource_types_not_imported.most_common()),
            "unmapped_codes": self._codes(self.unmapped_codes),
            "ignored_codes": self._codes(self.ignored_codes),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "rows_written": self.rows_written,
            "primary_dx_source": self.primary_dx_source,
            "lab_units_not_accepted": [
                {"test": t, "unit": u, "count": n} for (t, u), n in self.lab_units_not_accepted.most_common()
            ],
            "notes": dict(sorted(self.notes.items())),
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def render(self, top: int = 10) -> str:
        lines = [
            f"FHIR import {self.input} -> {self.output} in {self.elapsed_seconds:.1f} s",
            f"  files read {self.files_read:,} (skipped {self.files_skipped:,});"
            f" documents {self.documents_read:,}"
            f" (bundles {self.bundles_read:,}, quarantined {self.documents_quarantined:,})",
            "  rows written: " + ", ".join(f"{t} {n:,}" for t, n in self.rows_written.items()),
            "  resources (read / mapped / ignored / unmapped / excluded / quarantined):",
        ]
        for rtype, counts in sorted(self.resources.items()):
            lines.append(f"    {rtype:<20} " + " / ".join(f"{counts.get(o, 0):,}" for o in OUTCOMES))
        if self.resource_types_not_imported:
            lines.append(
                "  resource types not imported: "
                + ", ".join(f"{t} {n:,}" for t, n in self.resource_types_not_imported.most_common())
            )
        codes = self._codes(self.unmapped_codes)
        if codes:
            lines.append(
                f"  unmapped codes: {len(codes):,} distinct,"
                f" {sum(self.unmapped_codes.values()):,} uses; top {top}:"
            )
            for entry in codes[:top]:
                lines.append(
                    f"    {entry['count']:>7,}  {entry['resource_type']} {entry['code']} {entry['display']}"
                )
        if self.quarantine_reasons:
            lines.append(
                "  quarantined: " + ", ".join(f"{r} {n:,}" for r, n in self.quarantine_reasons.most_common())
            )
        if self.notes:
            lines.append("  notes: " + ", ".join(f"{k} {n:,}" for k, n in sorted(self.notes.items())))
        lines.append("  details: _import/report.json, _import/quarantine.parquet")
        return "\n".join(lines)
