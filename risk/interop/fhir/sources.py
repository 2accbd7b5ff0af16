"""Stream FHIR documents from a folder, a tar archive, JSON bundles or NDJSON files, one at a time."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from risk.errors import InputFileError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


@dataclass
class Document:
    """One parsed JSON value (a Bundle, or one resource from NDJSON), or why it could not be read."""

    source: str
    payload: Any = None
    error: str | None = None
    detail: str = ""


@dataclass
class SourceStats:
    files_read: int = 0
    files_skipped: int = 0
    skipped_names: list[str] | None = None

    def skip(self, name: str) -> None:
        self.files_skipped += 1
        if self.skipped_names is None:
            self.skipped_names = []
        if len(self.skipped_names) < 20:
            self.skipped_names.append(name)


def _kind(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if lowered.endswith(JSON_SUFFIXES):
        return "json"
    if lowered.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    return None


def _maybe_gunzip(name: str, handle: IO[bytes]) -> IO[bytes]:
    return gzip.GzipFile(fileobj=handle) if name.lower().endswith(".gz") else handle


def _read_json(name: str, handle: IO[bytes]) -> Iterator[Document]:
    try:
        yield Document(name, payload=json.load(_maybe_gunzip(name, handle)))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
        yield Document(name, error="malformed_json", detail=str(exc)[:200])


def _read_ndjson(name: str, handle: IO[bytes]) -> Iterator[Document]:
    stream = io.TextIOWrapper(_maybe_gunzip(name, handle), encoding="utf-8", errors="strict")
    line_no = 0
    try:
        for line_no, line in enumerate(stream, start=1):  # noqa: B007 - line_no used after the loop
            if not line.strip():
                continue
            try:
                yield Document(f"{name}:{line_no}", payload=json.loads(line))
            except json.JSONDecodeError as exc:
                yield Document(f"{name}:{line_no}", error="malformed_json", detail=str(exc)[:200])
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        yield Document(f"{name}:{line_no + 1}", error="unreadable_file", detail=str(exc)[:200])


def _read_member(name: str, handle: IO[bytes], stats: SourceStats) -> Iterator[Document]:
    kind = _kind(name)
    if kind == "json":
        stats.files_read += 1
        yield from _read_json(name, handle)
    elif kind == "ndjson":
        stats.files_read += 1
        yield from _read_ndjson(name, handle)
    else:
        stats.skip(name)


def _read_archive(path: Path, label: str, stats: SourceStats) -> Iterator[Document]:
    try:
        # Streaming mode: members are read in order, never all at once.
        archive = tarfile.open(path, mode="r|*")  # noqa: SIM115 - closed by the with-block below
    except (tarfile.TarError, OSError) as exc:
        raise InputFileError(str(path), f"not a readable tar archive ({exc})") from exc
    with archive:
        try:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                yield from _read_member(f"{label}/{member.name}", handle, stats)
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield Document(label, error="unreadable_archive", detail=str(exc)[:200])


def _read_file(path: Path, label: str, stats: SourceStats) -> Iterator[Document]:
    kind = _kind(path.name)
    if kind == "archive":
        yield from _read_archive(path, label, stats)
        return
    if kind is None:
        stats.skip(label)
        return
    with path.open("rb") as handle:
        yield from _read_member(label, handle, stats)


def iter_documents(path: Path, stats: SourceStats) -> Iterator[Document]:
    """Every FHIR JSON document under `path`, in a stable order (sorted file names, archive order)."""
    if not path.exists():
        raise InputFileError(str(path), "no such file or folder")
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield from _read_file(file, str(file.relative_to(path)), stats)
    else:
        if _kind(path.name) is None:
            raise InputFileError(
                str(path),
                "expected a folder, a .tar.gz / .tgz / .tar archive, .json bundles or .ndjson files",
            )
        yield from _read_file(path, path.name, stats)
