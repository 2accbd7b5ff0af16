"""`import_fhir`: stream documents -> staging Parquet (bounded memory) -> finalize -> atomic rename."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from risk.atomic import swap_into_place
from risk.definitions import contract
from risk.errors import InputFileError, RiskUserError
from risk.interop.fhir.finalize import finalize
from risk.interop.fhir.mappings import Mappings, mappings
from risk.interop.fhir.parsing import JSON
from risk.interop.fhir.report import ImportReport
from risk.interop.fhir.resources import MAPPERS, Context, Mapped, Quarantine
from risk.interop.fhir.sources import Document, SourceStats, iter_documents
from risk.interop.fhir.staging import Staging
from risk.provenance import code_version

log = logging.getLogger(__name__)

IMPORT_FOLDER = "_import"


class _DocumentImporter:
    def __init__(self, maps: Mappings, staging: Staging, report: ImportReport):
        self.maps = maps
        self.staging = staging
        self.report = report

    def quarantine(
        self, source: str, rtype: str | None, rid: str | None, reason: str, detail: str = ""
    ) -> None:
        self.report.quarantine_reasons[reason] += 1
        self.staging.add(
            "quarantine",
            {
                "source": source,
                "resource_type": rtype,
                "resource_id": rid,
                "reason": reason,
                "detail": detail,
            },
        )

    def document(self, doc: Document) -> None:
        self.report.documents_read += 1
        if doc.error:
            self.report.documents_quarantined += 1
            self.quarantine(doc.source, None, None, doc.error, doc.detail)
            return
        payload = doc.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
            self.report.documents_quarantined += 1
            self.quarantine(doc.source, None, None, "not_fhir", "no resourceType")
            return
        if payload["resourceType"] == "Bundle":
            self.bundle(doc.source, payload)
        else:
            self.resource(doc.source, payload, str(payload.get("id") or ""), Context())

    def bundle(self, source: str, bundle: JSON) -> None:
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            self.report.documents_quarantined += 1
            self.quarantine(source, "Bundle", bundle.get("id"), "malformed_bundle", "entry is not a list")
            return
        self.report.bundles_read += 1
        ctx = Context(full_urls={})
        resolved: list[tuple[JSON, str]] = []
        for position, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                self.quarantine(source, None, None, "malformed_entry", f"entry {position}")
                continue
            full_url = entry.get("fullUrl")
            rid = str(
                resource.get("id")
                or (str(full_url).rsplit("/", 1)[-1].rsplit(":", 1)[-1] if full_url else "")
            )
            if isinstance(full_url, str):
                ctx.full_urls[full_url] = rid  # type: ignore[index]
            if resource["resourceType"] == "Medication":
                for key in (full_url, f"Medication/{rid}", f"#{rid}"):
                    ctx.medications[str(key)] = resource
                self.report.notes["medication_resources_indexed"] += 1
                continue
            resolved.append((resource, rid))
        for resource, rid in resolved:
            self.resource(source, resource, rid, ctx)

    def resource(self, source: str, resource: JSON, rid: str, ctx: Context) -> None:
        rtype = str(resource["resourceType"])
        mapper = MAPPERS.get(rtype)
        if mapper is None:
            self.report.resource_types_not_imported[rtype] += 1
            return
        self.report.count(rtype, "read")
        try:
            result: Mapped = mapper(resource, rid, ctx, self.maps)
        except Quarantine as exc:
            self.report.count(rtype, "quarantined")
            self.quarantine(source, rtype, rid, exc.reason, exc.detail)
            return
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.report.count(rtype, "quarantined")
            self.quarantine(source, rtype, rid, "malformed_resource", f"{type(exc).__name__}: {exc}"[:200])
            return
        self.report.count(rtype, result.outcome)
        for code in result.codes:
            if result.outcome == "ignored":
                self.report.ignored(*code)
            else:
                self.report.unmapped(*code)
        for note in result.notes:
            self.report.notes[note] += 1
        if result.lab_unit_not_accepted:
            self.report.lab_units_not_accepted[result.lab_unit_not_accepted] += 1
        for table, row in result.rows:
            self.staging.add(table, row)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RiskUserError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise RiskUserError(f"{out}: folder exists and is not empty (use --force to replace it)")


def import_fhir(
    path: Path,
    out: Path,
    assignments: Path | None = None,
    *,
    force: bool = False,
    flush_rows: int | None = None,
) -> ImportReport:
    """Import FHIR bundles / NDJSON (STU3 or R4) at `path` into the raw input contract folder `out`.

    Integration hook for the nightly pipeline and its tests. Writes one Parquet per contract table plus
    `out/_import/report.json` and `out/_import/quarantine.parquet`. `out` appears only when complete.
    """
    started = time.perf_counter()
    path, out = Path(path), Path(out)
    _prepare_out(out, force)
    if assignments is not None and not Path(assignments).is_file():
        raise InputFileError(str(assignments), "assignment file not found")
    maps = mappings()
    settings: dict[str, Any] = maps.settings
    report = ImportReport(
        input=str(path),
        output=str(out),
        code_version=code_version(),
        definitions_version=maps.version(),
        contract_version=contract().version,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    work_root = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(work_root, ignore_errors=True)
    work = work_root / IMPORT_FOLDER / "work"
    try:
        staging = Staging(work / "staging", int(flush_rows or settings["flush_rows"]))
        stats = SourceStats()
        importer = _DocumentImporter(maps, staging, report)
        for doc in iter_documents(path, stats):
            importer.document(doc)
        staging.close()
        report.files_read, report.files_skipped = stats.files_read, stats.files_skipped
        report.skipped_files = list(stats.skipped_names or [])
        if report.documents_read == 0:
            raise InputFileError(str(path), "no FHIR JSON or NDJSON documents found")
        finalize(
            {name: staging.path(name) for name in staging.writers if name != "quarantine"}
            | {"quarantine": staging.path("quarantine")},
            work_root,
            work,
            maps,
            assignments,
            report,
        )
        shutil.rmtree(work)
        report.elapsed_seconds = time.perf_counter() - started
        report.write(work_root / IMPORT_FOLDER / "report.json")
        (work_root / IMPORT_FOLDER / "summary.txt").write_text(report.render() + "\n", encoding="utf-8")
        swap_into_place(work_root, out)
    except BaseException:
        shutil.rmtree(work_root, ignore_errors=True)
        raise
    log.info("FHIR import: %s", ", ".join(f"{t} {n}" for t, n in report.rows_written.items()))
    return report
