"""Content digests of a run's products, for comparing outputs before and after a change: every CSV's bytes
and every workbook's sheet names and cell values (an XLSX file's bytes carry its creation time). Used by
tests/test_fingerprint_other_shape.py and benchmarks/lists.py --compare."""

from __future__ import annotations

import hashlib
from pathlib import Path


def workbook_digest(path: Path) -> str:
    """Every sheet's name and every cell's value, in order."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    digest = hashlib.sha256()
    for sheet in book.worksheets:
        digest.update(f"[{sheet.title}]\n".encode())
        for row in sheet.iter_rows(values_only=True):
            digest.update(repr(row).encode("utf-8"))
    book.close()
    return digest.hexdigest()


def product_digests(root: Path, folders: tuple[str, ...] = ("lists", "calls")) -> dict[str, str]:
    """Digest of every CSV and workbook under root/<folder>, keyed by its path relative to root."""
    prints = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            key = path.relative_to(root).as_posix()
            if path.suffix == ".csv":
                prints[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.suffix == ".xlsx":
                prints[key] = workbook_digest(path)
    return prints
