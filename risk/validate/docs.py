"""docs/validation.md, written by `risk docs` from definitions/validation.yaml and the contract."""

from __future__ import annotations

from risk import definitions
from risk.docs import generated


@generated("validation.md")
def validation_markdown() -> str:
    rules = definitions.validation_rules()
    contract = definitions.contract()
    lines = [
        "# Validation and quarantine",
        "",
        f"Validation rules version **{rules['version']}**, contract **{contract.version}**. "
        "Generated from `risk/definitions/validation.yaml` and `contract.yaml` by `risk docs`; "
        "edit the YAML, not this file.",
        "",
        "`risk validate INPUT_DIR --out OUT_DIR [--as-of YYYY-MM-DD]` reads one file per table and writes "
        "`OUT/canonical/<table>.parquet`, `OUT/quarantine.parquet` (table, source_row, person_id, "
        "reason_code, detail) and `OUT/validation.json`. Every input row is either accepted into its "
        "canonical table or quarantined exactly once, so per table **rows read = accepted + quarantined**.",
        "",
        "## Stops the run (exit 2, one line naming the file and column)",
        "",
        "- a required table is missing (optional tables: "
        + ", ".join(f"`{t}`" for t in rules["optional_tables"])
        + "; when absent an empty canonical table is written);",
        "- a required table has no accepted row (header only, or every row quarantined), persons "
        "included, unless `--allow-empty TABLE` names it (then recorded in `overrides`);",
        "- both `<table>.csv` and `<table>.parquet` exist; the file is empty, not UTF-8, not Parquet, "
        "or has a CSV line with the wrong number of fields;",
        "- a required column is missing (names match case-insensitively; extra columns are ignored);",
        "- wrong type: a Parquet column whose physical type cannot hold the contract type (e.g. a date "
        "stored where `sbp` belongs), or a text column in which **no** value can be read as its type.",
        "",
        "A single cell that cannot be read (`abc` in `sbp`, `2024-13-45` as a date) is a row problem: the "
        "row is quarantined as `bad_value`.",
        "",
        "## Row numbers",
        "",
        "`source_row` is the 1-based position of the row in its input file: Parquet file row order; for CSV "
        "the data record number with the header excluded (the line number minus one unless a quoted field "
        "spans lines). Canonical tables keep file order only approximately (parallel threads may swap "
        "blocks of rows); sort by `source_row` when order matters. `quarantine.parquet` is sorted by "
        "table and source_row.",
        "",
        "## Quarantine reasons",
        "",
        "A row is quarantined with the **first** reason that applies, in this order. `duplicate` is decided "
        "last, among rows that passed every other check: of rows sharing the table key the first in the "
        "file is kept.",
        "",
        "| order | reason_code | 中文 | meaning |",
        "|---|---|---|---|",
    ]
    for order, (code, text) in enumerate(rules["reasons"].items(), start=1):
        lines.append(f"| {order} | `{code}` | {text['zh']} | {text['en']} |")
    lines += [
        "",
        "## Checks that come from the contract",
        "",
        "- `missing_value`: columns with `may be empty: no` in docs/data-contract.md;",
        "- `not_allowed` / value sets: `allowed` lists are matched case-insensitively and written in their "
        "contract spelling; value-set codes are lower-cased;",
        "- `out_of_range`: column `range`s; lab values after conversion to the canonical unit "
        "(definitions/lab_units.yaml); birth dates before " + str(rules["earliest_birth_date"]) + ";",
        "- `future_date`: any date after `--as-of` (default: today); a timestamp on the as-of day is fine;",
        "- `before_birth`: any date of the record before the person's birth date;",
        f"- `after_death`: the event date more than {rules['after_death_grace_days']} days after death_date "
        "(" + ", ".join(f"{t}.{c}" for t, c in rules["event_date"].items()) + ").",
        "",
        "Checks between two columns:",
        "",
    ]
    for comparison in rules["comparisons"]:
        lines.append(f"- `{comparison['table']}`: `{comparison['check']}` else `{comparison['reason']}`")
    lines += [
        "",
        "## Formats and normalisation",
        "",
        "| format | pattern (after normalisation) |",
        "|---|---|",
    ]
    for name, pattern in rules["formats"].items():
        lines.append(f"| `{name}` | `{pattern}` |")
    lines += [
        "",
        "- strings are trimmed; empty strings are empty values;",
        "- ICD-10 codes are upper-cased and a dot-less code gets its dot after the third character "
        "(`e112` → `E11.2`); a misplaced or doubled dot or an inner space is not repaired (quarantined); "
        "`secondary_dx` is a `;`-separated list (full-width `；` accepted), each code checked;",
        "- booleans: " + ", ".join(f"`{v}`" for v in rules["bool_true"]) + " / "
        + ", ".join(f"`{v}`" for v in rules["bool_false"]) + " (case-insensitive);",
        "- lab units are matched case-insensitively without spaces (`μ`/`µ` read as `u`); `value` is "
        "converted to the canonical unit and `unit` set to it;",
        "- time-zone-aware Parquet timestamps are read as Asia/Shanghai local time.",
        "",
        "## National ID",
        "",
        "`persons.national_id` is never written: the canonical table carries `national_id_hash` (keyed "
        "HMAC-SHA256, key from `RISK_ID_KEY`), `national_id_masked` (the last 2 characters only, so "
        "region code and birth date cannot rebuild it) and "
        "`national_id_valid` (GB 11643 / ISO 7064 MOD 11-2 check character). An invalid ID does **not** "
        "quarantine the person (person_id links the tables); it is counted as warning "
        "`national_id_checksum` in validation.json. Quarantine details never show names, phones or IDs, "
        "and file errors do not echo the offending line.",
        "",
    ]
    return "\n".join(lines)
