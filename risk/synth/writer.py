"""Chunked table writers (Parquet or CSV) into a temporary folder that is renamed when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.atomic import swap_into_place
from risk.errors import RiskUserError

FORMATS = ("parquet", "csv")


class TableWriters:
    """One streaming writer per table; counts rows so dirty-row positions can be made absolute."""

    def __init__(self, folder: Path, file_format: str):
        if file_format not in FORMATS:
            raise RiskUserError(f"unknown format '{file_format}' (use parquet or csv)")
        self.folder = folder
        self.file_format = file_format
        self.rows: dict[str, int] = {}
        self._writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}

    def write(self, name: str, table: pa.Table, file_format: str | None = None) -> None:
        fmt = file_format or self.file_format
        writer = self._writers.get(name)
        if writer is None:
            path = self.folder / f"{name}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "parquet":
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            else:
                writer = pacsv.CSVWriter(path, table.schema)
            self._writers[name] = writer
        writer.write_table(table)
        self.rows[name] = self.rows.get(name, 0) + table.num_rows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


@contextmanager
def staged_folder(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out_dir`, on failure it is removed."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise RiskUserError(f"{out_dir} exists and is not empty (use --overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, out_dir)
