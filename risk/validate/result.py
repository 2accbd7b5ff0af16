"""What a validation run reports: per-table accounting (read = accepted + quarantined) and reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

TOP_REASONS = 3


@dataclass
class TableCounts:
    file: str | None  # file name in the input folder; None when an optional table is absent
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def adds_up(self) -> bool:
        return (self.rows_read == self.rows_accepted + self.rows_quarantined
                and self.rows_quarantined == sum(self.reasons.values()))


@dataclass
class ValidationResult:
    out: Path
    as_of: date
    contract_version: str
    rules_version: str
    code_version: str
    input_fingerprint: str
    tables: dict[str, TableCounts]
    warnings: dict[str, int]
    seconds: float
    overrides: list[str] = field(default_factory=list)  # refusals the user overrode (e.g. --allow-empty)

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables.values())

    @property
    def rows_accepted(self) -> int:
        return sum(t.rows_accepted for t in self.tables.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables.values())

    def reason_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in self.tables.values():
            for reason, n in counts.reasons.items():
                totals[reason] = totals.get(reason, 0) + n
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "contract_version": self.contract_version,
            "validation_rules_version": self.rules_version,
            "code_version": self.code_version,
            "input_fingerprint": self.input_fingerprint,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "tables": {name: asdict(counts) for name, counts in self.tables.items()},
            "reasons": self.reason_totals(),
            "warnings": self.warnings,
            "overrides": self.overrides,
        }

    def render(self) -> str:
        lines = [
            f"Validated into {self.out} (as of {self.as_of.isoformat()}, contract {self.contract_version}, "
            f"{self.seconds:.1f} s)",
            f"{'table':<14}{'read':>13}{'accepted':>13}{'quarantined':>13}  top reasons",
        ]
        for name, counts in self.tables.items():
            if counts.file is None:
                lines.append(f"{name:<14}{'(absent: empty table written)':>39}")
                continue
            top = sorted(counts.reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
            reasons = ", ".join(f"{reason} {n:,}" for reason, n in top)
            lines.append(f"{name:<14}{counts.rows_read:>13,}{counts.rows_accepted:>13,}"
                         f"{counts.rows_quarantined:>13,}  {reasons}")
        lines.append(f"{'total':<14}{self.rows_read:>13,}{self.rows_accepted:>13,}{self.rows_quarantined:>13,}")
        lines.append("rows read = accepted + quarantined in every table; reasons in quarantine.parquet")
        for warning, n in self.warnings.items():
            if n:
                lines.append(f"warning: {warning}: {n:,} rows (kept)")
        for override in self.overrides:
            lines.append(f"warning: {override}")
        return "\n".join(lines)
