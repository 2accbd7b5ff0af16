"""Validation with quarantine: input folder -> canonical tables, quarantine and validation.json.

Public: validate_folder(input_dir, out, as_of=None) -> ValidationResult. See docs/validation.md.
"""

from risk.validate.result import TableCounts, ValidationResult
from risk.validate.run import validate_folder

__all__ = ["TableCounts", "ValidationResult", "validate_folder"]
