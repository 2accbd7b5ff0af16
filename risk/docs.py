"""Documents generated from definitions, so documentation and behaviour cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from risk import definitions

GENERATORS: dict[str, Callable[[], str]] = {}


def generated(filename: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def register(func: Callable[[], str]) -> Callable[[], str]:
        GENERATORS[filename] = func
        return func

    return register


@generated("data-contract.md")
def data_contract_markdown() -> str:
    contract = definitions.contract()
    lines = [
        "# Input data contract",
        "",
        f"Contract version **{contract.version}**. Generated from `risk/definitions/contract.yaml` by "
        "`risk docs`; edit the YAML, not this file.",
        "",
        "An input is a folder with one file per table, named `<table>.parquet` or `<table>.csv` "
        "(UTF-8, header row, `,` separator). Dates are ISO `YYYY-MM-DD`; timestamps ISO "
        "`YYYY-MM-DD HH:MM:SS` (a date alone is read as midnight); booleans `true/false` (also `1/0`, "
        "`yes/no`, `Y/N`). Extra columns are ignored. A missing table, a missing required column, an "
        "unreadable file or a column that cannot be read as its type stops validation with one message "
        "naming the file and column. Row-level problems quarantine the row with a reason code.",
        "",
        "Tables that may be missing or empty: "
        + ", ".join(f"`{t}`" for t in definitions.validation_rules()["optional_tables"])
        + ". Every other table must be present with at least one accepted row (an empty vitals table "
        "would grade everybody \"no BP\"); `--allow-empty TABLE` runs without one (e.g. `--allow-empty labs` "
        "for a county without a lab interface) and the run records it as a warning.",
        "",
    ]
    for table in contract.tables.values():
        lines += [f"## `{table.name}`", "", table.description, "", f"Key: `{', '.join(table.key)}`", ""]
        lines += ["| column | type | required | may be empty | rule | description |",
                  "|---|---|---|---|---|---|"]
        for col in table.columns.values():
            rule = []
            if col.allowed:
                rule.append("one of " + ", ".join(f"`{a}`" for a in col.allowed))
            if col.value_set:
                rule.append(f"value set `{col.value_set}`")
            if col.range:
                rule.append(f"{col.range[0]:g}–{col.range[1]:g} {col.unit or ''}".strip())
            if col.format:
                rule.append(f"format `{col.format}`")
            lines.append(
                f"| `{col.name}` | {col.type} | {'yes' if col.required else 'no'} | "
                f"{'yes' if col.nullable else 'no'} | {'; '.join(rule)} | {col.description} |"
            )
        lines.append("")
    lines += ["## Value set `conditions`", "", "| code | 中文 | English | ICD-10 | group |",
              "|---|---|---|---|---|"]
    for row in definitions.conditions().itertuples():
        lines.append(
            f"| `{row.code}` | {row.name_zh} | {row.name_en} | {row.icd10_prefixes} | {row.group} |"
        )
    lines += ["", "## Value set `lab_tests` and units", "",
              "| test | name | canonical unit | accepted units | range (canonical) |",
              "|---|---|---|---|---|"]
    for code, test in definitions.lab_units()["tests"].items():
        units = ", ".join(f"`{u}`" for u in test["units"])
        lines.append(f"| `{code}` | {test['name_en']} / {test['name_zh']} | {test['unit']} | {units} | "
                     f"{test['range'][0]}–{test['range'][1]} |")
    lines.append("")
    return "\n".join(lines)


def write_generated_docs(out: Path) -> list[Path]:
    # Import modules that register more generators (feature catalogue, rules...) when they exist.
    import importlib

    for module in ("risk.features.catalogue", "risk.tiers.ruleset_docs", "risk.indicators.docs",
                   "risk.validate.docs"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, func in GENERATORS.items():
        path = out / filename
        path.write_text(func(), encoding="utf-8")
        written.append(path)
    return written
