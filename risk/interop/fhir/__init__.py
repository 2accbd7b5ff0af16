"""HL7 FHIR (STU3 and R4) bundles / NDJSON bulk exports -> the raw input contract (docs/fhir-import.md).

Integration hook for pipelines and tests: `import_fhir(path, out, assignments=None) -> ImportReport`.
"""

from risk.interop.fhir.importer import import_fhir
from risk.interop.fhir.report import ImportReport

__all__ = ["ImportReport", "import_fhir"]
