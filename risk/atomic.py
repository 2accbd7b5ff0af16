"""Publishing a finished folder in one step, so readers never see a half-written result."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from risk.errors import RiskUserError


def check_replaceable(out: Path, marker: str, what: str) -> None:
    """Refuse an OUT that swap_into_place would wrongly replace: a file, or a folder with content that is
    not an earlier output of the same kind (recognised by `marker`), such as a user's own folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RiskUserError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not (out / marker).exists():
        raise RiskUserError(f"{out}: folder exists and is not {what} (no {marker}); "
                            "choose another output folder")


def swap_into_place(ready: Path, out: Path) -> None:
    """Rename the finished `ready` folder to `out`. An existing `out` is replaced only after `ready` is
    complete: it is renamed aside, the new folder renamed in, then the old one deleted."""
    if out.exists():
        retired = out.parent / f".{out.name}.retired-{os.getpid()}"
        shutil.rmtree(retired, ignore_errors=True)
        out.rename(retired)
        ready.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        ready.rename(out)
