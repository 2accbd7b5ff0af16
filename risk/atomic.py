"""Publishing a finished folder in one step, so readers never see a half-written result."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
