"""Publishing a finished folder in one step, so readers never see a half-written result."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from risk.errors import RiskUserError

log = logging.getLogger(__name__)
# hidden work folders next to an output: .OUT.staging-PID, .OUT.retired-PID, ..OUT.staging-PID.validating-..
_WORK_FOLDER = re.compile(r"\.(?:staging|retired|validating)-(\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(out: Path) -> list[Path]:
    """Remove hidden work folders of `out` left by a run that was killed (its process no longer exists);
    they can hold names and phone numbers. Folders of a run still going are left alone."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for path in out.parent.iterdir():
        name = path.name
        if not name.startswith(".") or not name.lstrip(".").startswith(f"{out.name}."):
            continue
        found = _WORK_FOLDER.search(name[len(out.name) + 1 :])
        if found is None or _alive(int(found.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("removed %d work folder(s) left by an interrupted run of %s", len(removed), out.name)
    return removed


def check_replaceable(out: Path, marker: str, what: str) -> None:
    """Refuse an OUT that swap_into_place would wrongly replace: a file, or a folder with content that is
    not an earlier output of the same kind (recognised by `marker`), such as a user's own folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RiskUserError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not (out / marker).exists():
        raise RiskUserError(
            f"{out}: folder exists and is not {what} (no {marker}); choose another output folder"
        )


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
