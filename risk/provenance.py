"""Versions recorded on every output: data snapshot, definitions, code."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import risk


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (with -dirty if modified)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "nogit"
    return f"{risk.__version__}+{sha}"


def file_fingerprint(paths: list[Path]) -> str:
    """Content hash of a set of files (order-independent by name), used as the data snapshot id."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def text_fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
