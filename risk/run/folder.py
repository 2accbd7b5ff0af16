"""RunFolder: the one place that names the files inside a run (or a `risk validate` output).

A run folder, as `risk nightly` publishes it:

    RUN/run.json             manifest (RunManifest): as_of, versions, counts, transitions
    RUN/summary.md           the manifest for people
    RUN/validation.json      rows read = accepted + quarantined, per table (also in a validate output)
    RUN/canonical/<t>.parquet  validated tables (also in a validate output)
    RUN/quarantine.parquet   rejected rows with reason codes
    RUN/features.parquet     as-of features
    RUN/tiers.parquet        tiers (rules, model, combined) with reasons and next due date
    RUN/lists/               priority lists and the unmanaged key-population list
    RUN/partitioned/<name>/  township-partitioned copies (Spark engine)
    RUN/timings.json         wall-clock seconds per stage (not part of the results)

The as-of date of a folder has one rule: run.json's `as_of`; else the latest `as_of` in tiers.parquet;
else none (a validate output).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from risk.atomic import check_replaceable, remove_leftovers, swap_into_place
from risk.errors import InputFileError
from risk.run.manifest import RunManifest
from risk.run.tables import parquet_source

CANONICAL = "canonical"
MANIFEST = "run.json"
SUMMARY = "summary.md"
VALIDATION = "validation.json"
QUARANTINE = "quarantine.parquet"
FEATURES = "features.parquet"
TIERS = "tiers.parquet"
LISTS = "lists"
PARTITIONED = "partitioned"
TIMINGS = "timings.json"

NOT_A_RUN = (
    "not a run folder: no canonical/ folder with the validated tables "
    "(run `risk validate INPUT --out RUN_DIR` or `risk nightly` first)"
)


def _in_run(name: str) -> property:
    return property(lambda self: self.path / name, doc=f"RUN/{name}")


@dataclass(frozen=True)
class RunFolder:
    """A run folder or a `risk validate` output (paths only; nothing is read until asked)."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing folder that holds canonical tables (canonical/, or the tables themselves)."""
        folder = cls(Path(path))
        folder.canonical  # noqa: B018 - raises when the folder holds no canonical tables
        return folder

    # --- names --------------------------------------------------------------------------------------
    @property
    def canonical(self) -> Path:
        """RUN/canonical, or RUN itself when it holds the tables (persons.parquet); else InputFileError."""
        if (self.path / CANONICAL).is_dir():
            return self.path / CANONICAL
        if (self.path / "persons.parquet").is_file():
            return self.path
        raise InputFileError(str(self.path), NOT_A_RUN)

    def table(self, name: str) -> Path:
        """A canonical table's Parquet file."""
        return self.canonical / f"{name}.parquet"

    manifest_path = _in_run(MANIFEST)
    summary = _in_run(SUMMARY)
    validation = _in_run(VALIDATION)
    quarantine = _in_run(QUARANTINE)
    features = _in_run(FEATURES)
    tiers = _in_run(TIERS)
    lists = _in_run(LISTS)
    timings = _in_run(TIMINGS)

    def partitioned(self, name: str) -> Path:
        return self.path / PARTITIONED / name

    # --- contents -----------------------------------------------------------------------------------
    @property
    def has_tiers(self) -> bool:
        return self.tiers.is_file()

    @property
    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> RunManifest:
        """run.json, typed; InputFileError when absent or without an as_of."""
        if not self.has_manifest:
            raise InputFileError(str(self.manifest_path), "run manifest not found (is this a run folder?)")
        return RunManifest.from_dict(_read_json(self.manifest_path), str(self.manifest_path))

    def write_manifest(self, manifest: RunManifest) -> None:
        self.manifest_path.write_text(manifest.to_json(), encoding="utf-8")

    def require(self, *paths: Path) -> None:
        """InputFileError unless each of these files of the run exists."""
        for path in paths:
            if not path.is_file():
                raise InputFileError(str(path), "missing from the run folder")

    def validation_report(self) -> dict[str, Any]:
        """validation.json as a dict ({} when absent)."""
        return _read_json(self.validation) if self.validation.is_file() else {}

    @property
    def as_of(self) -> date | None:
        """run.json's as_of; else the latest as_of in tiers.parquet; else None."""
        if self.has_manifest:
            try:
                return self.read_manifest().as_of
            except InputFileError:
                pass
        if self.has_tiers:
            found = duckdb.sql(f"SELECT max(as_of) FROM {parquet_source(self.tiers)}").fetchall()[0][0]
            if found is not None:
                return found
        return None

    # --- staging and publishing ---------------------------------------------------------------------
    @classmethod
    @contextmanager
    def staged(cls, out: Path) -> Iterator[RunFolder]:
        """A run assembled in a hidden sibling of `out` (.OUT.staging-PID) and deleted if anything fails;
        the caller publishes it with `publish(out)` once every stage has finished. `out` may hold an
        earlier run (replaced on publish), never a folder of something else."""
        out = Path(out).resolve()
        check_replaceable(out, MANIFEST, "an earlier run folder")
        remove_leftovers(out)  # hidden work folders of a killed run (they can hold names and phones)
        staging = out.parent / f".{out.name}.staging-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            yield cls(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def publish(self, out: Path) -> RunFolder:
        """Rename this finished (staged) run to `out` in one step; an earlier run there is replaced only
        after this one is complete."""
        out = Path(out).resolve()
        swap_into_place(self.path, out)
        return RunFolder(out)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(str(path), f"cannot be read as JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


def canonical_dir(folder: str | Path) -> Path:
    """The canonical tables of a run or validate output (or of a canonical/ folder given directly)."""
    return RunFolder(Path(folder)).canonical
