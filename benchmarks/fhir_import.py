"""Benchmark: FHIR import of the full Synthea STU3 archive vs plain json.loads of every bundle.

Each variant runs in its own subprocess so peak RSS (ru_maxrss) is measured per variant.
Usage: .venv/bin/python benchmarks/fhir_import.py [ARCHIVE]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "synthea-fhir-stu3" / "bundles.tar.gz"

REFERENCE = """
import json, resource, sys, tarfile, time
started = time.perf_counter(); n = 0
with tarfile.open(sys.argv[1], "r|*") as tar:
    for member in tar:
        if member.isfile():
            json.load(tar.extractfile(member)); n += 1
print(json.dumps({"seconds": time.perf_counter() - started, "documents": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = """
import json, resource
import duckdb, pandas, pyarrow.parquet  # noqa: F401 - the importer's libraries, loaded but idle
import risk.interop.fhir  # noqa: F401
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

IMPORT = """
import json, resource, sys, time
from pathlib import Path
from risk.interop.fhir import import_fhir
started = time.perf_counter()
report = import_fhir(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": report.rows_written,
                  "documents": report.documents_read, "quarantined": report.documents_quarantined,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict:
    output = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    archive = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ARCHIVE
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        reference = run(REFERENCE, str(archive))
        baseline = run(BASELINE)
        imported = run(IMPORT, str(archive), str(Path(tmp) / "input"))
        total = time.perf_counter() - started
    print(f"archive: {archive} ({archive.stat().st_size / 1e6:.1f} MB, {reference['documents']:,} bundles)")
    print(f"reference json.load of every bundle: {reference['seconds']:.2f} s, "
          f"peak RSS {reference['peak_rss_mb']:.0f} MB")
    print(f"risk import fhir:                    {imported['seconds']:.2f} s, "
          f"peak RSS {imported['peak_rss_mb']:.0f} MB")
    print(f"libraries loaded, no work:           peak RSS {baseline['peak_rss_mb']:.0f} MB "
          f"(import working set above that: {imported['peak_rss_mb'] - baseline['peak_rss_mb']:.0f} MB)")
    print(f"ratio import / reference: time x{imported['seconds'] / reference['seconds']:.2f}, "
          f"peak RSS x{imported['peak_rss_mb'] / reference['peak_rss_mb']:.2f}")
    print("rows written: " + ", ".join(f"{t} {n:,}" for t, n in imported["rows"].items()))
    print(f"documents quarantined: {imported['quarantined']}; wall time of the benchmark {total:.1f} s")


if __name__ == "__main__":
    main()
