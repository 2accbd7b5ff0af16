"""`generate_county`: stream blocks of residents into the input data contract, then measure the result."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from risk.definitions import contract, synth_profile, synth_profiles
from risk.errors import RiskUserError
from risk.provenance import code_version
from risk.synth.block import BLOCK_SIZE, generate_block
from risk.synth.columns import NULL_DAY, Cat, Table, schema, to_arrow
from risk.synth.context import build_context
from risk.synth.dirty import inject
from risk.synth.ids import prefixed_ids
from risk.synth.writer import FORMATS, TableWriters, staged_folder

log = logging.getLogger(__name__)
EVENT_TABLES = ["conditions", "vitals", "labs", "follow_ups", "encounters", "prescriptions"]
MAX_PERSONS = 90_000_000


@dataclass(frozen=True)
class SynthConfig:
    persons: int = 10_000
    seed: int = 20261125
    start: date = date(2021, 1, 1)
    end: date = date(2024, 12, 31)
    dirty_share: float = 0.005
    file_format: str = "parquet"
    home_bp_per_year: float = 0.0
    overwrite: bool = False
    profile: str = "suixi"

    def check(self) -> None:
        if not 1 <= self.persons <= MAX_PERSONS:
            raise RiskUserError(f"--persons must be between 1 and {MAX_PERSONS:,}")
        if self.end <= self.start:
            raise RiskUserError("--end must be after --start")
        if not 0 <= self.dirty_share <= 0.2:
            raise RiskUserError("--dirty-share must be between 0 and 0.2")
        if self.file_format not in FORMATS:
            raise RiskUserError(f"--format must be one of {', '.join(FORMATS)}")
        if self.home_bp_per_year < 0:
            raise RiskUserError("--home-bp-per-year must be >= 0")
        if self.profile not in synth_profiles():
            raise RiskUserError(f"--profile must be one of {', '.join(synth_profiles())}")


@dataclass
class SynthSummary:
    out_dir: Path
    config: SynthConfig
    rows: dict[str, int]
    dirty_rows: int
    seconds: float
    figures: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        lines = [
            f"synthetic county written to {self.out_dir} ({self.config.persons:,} persons, "
            f"{self.config.start}..{self.config.end}, seed {self.config.seed}, "
            f"profile {self.config.profile}) in {self.seconds:.1f} s"
        ]
        lines += [f"  {name:<14}{count:>13,} rows" for name, count in self.rows.items()]
        lines.append(f"  dirty rows injected: {self.dirty_rows:,} (manifest _synth/dirty_rows.parquet)")
        for key, value in self.figures.items():
            shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
            lines.append(f"  {key:<58}{shown:>10}")
        return "\n".join(lines)


def generate_county(config: SynthConfig, out_dir: Path) -> SynthSummary:
    from risk.synth.calibration import measure

    config.check()
    started = time.perf_counter()
    params = synth_profile(config.profile)
    ctx = build_context(
        params,
        config.start,
        config.end,
        config.seed,
        config.persons,
        config.home_bp_per_year,
        config.dirty_share,
    )
    dirt_kinds = params["dirty"]["kinds"]
    manifest: list[tuple[str, int, str, bool]] = []
    encounter_counter = 0
    with staged_folder(Path(out_dir), config.overwrite) as staging:
        writers = TableWriters(staging, config.file_format)
        truth_writer = TableWriters(staging / "_synth", "parquet")
        try:
            for number, first in enumerate(range(0, config.persons, BLOCK_SIZE)):
                n = min(BLOCK_SIZE, config.persons - first)
                block = generate_block(ctx, number, first, n)
                dirt_rng = np.random.default_rng([config.seed, number, 7])
                births = block.residents.birth_day

                def birth_of(person: np.ndarray, _first=first, _births=births) -> np.ndarray:
                    return _births[person - _first - 1]

                writers.write("persons", to_arrow("persons", block.tables["persons"]))
                for name in EVENT_TABLES:
                    table = block.tables[name]
                    if not table:  # nobody in this block has such records (small counties, a last block)
                        writers.write(name, schema(name).empty_table())
                        continue
                    table, found = inject(
                        dirt_rng,
                        name,
                        table,
                        config.dirty_share,
                        dirt_kinds,
                        birth_of,
                        writers.rows.get(name, 0),
                    )
                    manifest += found
                    if name == "encounters":
                        count = len(table["person_id"])
                        table["encounter_id"] = np.arange(encounter_counter, encounter_counter + count) + 1
                        encounter_counter += count
                    writers.write(name, to_arrow(name, table))
                truth_writer.write("truth", truth_arrow(block.truth))
                log.info("block %d: %d persons done", number, n)
            truth_writer.write("dirty_rows", manifest_arrow(manifest))
        finally:
            writers.close()
            truth_writer.close()
        rows = {name: writers.rows.get(name, 0) for name in contract().tables}
        meta = {
            "config": {**asdict(config), "start": str(config.start), "end": str(config.end)},
            "synth_definitions_version": params["version"],
            "profile": params["profile"],
            "contract_version": contract().version,
            "code_version": code_version(),
            "rows": rows,
            "dirty_rows": len(manifest),
        }
        (staging / "_synth" / "meta.json").write_text(
            json.dumps(meta, indent=2, default=str), encoding="utf-8"
        )
        figures = measure(staging, config.file_format)
    return SynthSummary(Path(out_dir), config, rows, len(manifest), time.perf_counter() - started, figures)


def truth_arrow(truth: Table) -> pa.Table:
    arrays = {}
    for name, col in truth.items():
        if name == "person_id":
            arrays[name] = prefixed_ids("P", col, 8)
        elif isinstance(col, Cat):
            arrays[name] = pa.array(np.array(col.labels, dtype=object)[col.codes], type=pa.string())
        elif name in ("death_date", "moved_on"):
            arrays[name] = pa.array(col.astype(np.int32), type=pa.date32(), mask=col == NULL_DAY)
        else:
            arrays[name] = pa.array(col)
    return pa.table(arrays)


def manifest_arrow(manifest: list[tuple[str, int, str, bool]]) -> pa.Table:
    columns = list(zip(*manifest, strict=True)) if manifest else [[], [], [], []]
    return pa.table(
        {
            "table": pa.array(columns[0], type=pa.string()),
            "row": pa.array(columns[1], type=pa.int64()),
            "kind": pa.array(columns[2], type=pa.string()),
            "invalid": pa.array(columns[3], type=pa.bool_()),
        }
    )
