"""docs/indicators.md, generated from risk/definitions/indicators.yaml by `risk docs`."""

from __future__ import annotations

from risk.docs import generated
from risk.indicators.definitions import indicator_set
from risk.indicators.report import target_text

HEADER = """# Indicators

Generated from `risk/definitions/indicators.yaml` (version **{version}**) by `risk docs`; edit the YAML,
not this file. Compute with
`risk report INDICATOR --run RUN_DIR --period 2024Q4 --by township --format html|csv|xlsx --out FILE`,
or the county overview `risk overview --run RUN_DIR --out overview.html [--lang en]`; in Python with
`risk.indicators.open_run` and `risk.indicators.compute_indicator`.

Exports: CSV headers are Chinese (`--lang en`: the English machine names `indicator_id, name_zh, name_en,
definition, period, period_start, period_end, level, unit, numerator, denominator, persons, value, ci_low,
ci_high, target, meets_target, suppressed`). XLSX has the Chinese header with the machine names as a second
header row, rates as `0.0%`, yuan as `#,##0.00` and counts as `#,##0` number formats (real numbers, not
text), a sheet describing the run (本表说明 / about) and a sheet describing every indicator (指标定义 /
indicators).

## Decisions that apply to every indicator
- **Managed during the period** (在管): a registered condition with `enrolled_on` <= period end, not ended
  before the period start and the person not dead before the period start. Patients **enrolled mid-period**
  and patients who **died or left management during the period** are in the denominator (Chinese definition:
  年内已管理). The WHO HEARTS cohort differs (see `bp_control_hearts`).
- **No measurement in the period = not controlled** in the Chinese definitions (lost to follow-up counts as
  not on target). The `_followed` variant restricts the denominator to patients followed up in the period.
- **Moved township**: `persons` holds only the current township / unit / team / village, so every period is
  attributed to the patient's geography at extraction time (the township at period end, for the latest
  period). Past periods are re-attributed when a patient moves.
- **Which BP**: any reading except `source = home` (a null source is kept). Latest = latest `measured_at`;
  readings at the same instant -> the higher SBP then DBP.
- **Thresholds** come from `risk/definitions/thresholds.yaml` (shared with features and rules, sources cited
  there): BP controlled SBP < {sbp} and DBP < {dbp} mmHg; FPG < {fpg} mmol/L; {fu} follow-ups a year.
  HbA1c < {hba1c} % is defined in indicators.yaml.
- **Targets**: BP / glucose control >= 60 % (2023), >= 80 % (2025) from county-facts.md (Jieshou 2023 reform
  plan); a period uses the target of the latest target year on or before its year (2024 -> 60 %).
- **Confidence intervals**: 95 % Wilson score intervals (statsmodels), only where the units are persons.
- **Small cells** (everything exported: CSV, XLSX, HTML): a cell is hidden when it describes 1..k-1 people
  (denominator, numerator or denominator - numerator; k = {k} by default, `--min-count` to change). Then, in
  every group of cells that add up to a published total (the townships of one period and the county row; the
  rows and columns of a transition table), further cells (next-smallest first) are hidden until at least two
  cells covering at least k people are hidden, so no hidden value can be recovered by subtraction. A table
  shows one breakdown level plus the county total, which is what the protection assumes.
- **CSV** exports are UTF-8 with a byte-order mark (`utf-8-sig`) so Excel on Chinese Windows opens them
  with the right encoding.
- **Definitions**: every report names the definition used: `chinese_national` (国家基本公共卫生服务规范,
  3rd ed. 2017; per period) or `who_hearts` (WHO HEARTS / Simple.org monthly: latest BP in the last 3 calendar
  months, patients registered before them and under care, lost to follow-up excluded).

## Periods
`2024` (year), `2024Q4` (quarter), `2024-11` (month). `--over month|quarter|year` splits the period. The
HEARTS indicator uses the last month of the period as the reference month; standardised management uses
the 12 months ending at the period end.

## Indicators
"""


@generated("indicators.md")
def indicators_markdown() -> str:
    defs = indicator_set()
    p = defs.parameters
    header = HEADER.format(version=defs.version, sbp=p["bp_sbp_below"], dbp=p["bp_dbp_below"],
                           fpg=p["fpg_below"], fu=p["follow_ups_per_year"], hba1c=p["hba1c_below"],
                           k=defs.min_count)
    lines = [header]
    lines += ["| id | 指标 | indicator | definition | kind |", "|---|---|---|---|---|"]
    for ind in defs.indicators.values():
        lines.append(f"| `{ind.id}` | {ind.zh} | {ind.en} | {ind.definition} | {ind.kind} |")
    for key, meta in defs.tier_indicators.items():
        lines.append(f"| `{key}` | {meta['zh']} | {meta['en']} | tiers.parquet | tier |")
    lines.append("")
    for ind in defs.indicators.values():
        cohort = defs.cohorts[ind.denominator]
        lines += [
            f"### `{ind.id}` — {ind.zh} / {ind.en}",
            "",
            f"- Definition: {ind.definition_label}",
            f"- Denominator: `{ind.denominator}` — {cohort.get('en', '')} ({cohort.get('zh', '')})"
            + ("" if ind.denominator_value == "1" else f"; summed `{ind.denominator_value}`"),
            f"- Numerator: `{' '.join(ind.numerator.split())}`"
            + (f" (measures: {', '.join(f'`{m}`' for m in ind.measures)})" if ind.measures else ""),
            f"- Window: {ind.window}; interval: {ind.ci}",
            f"- Period rule: {ind.period_rule}",
        ]
        if ind.period_rule_zh:
            lines.append(f"- 计算方法: {ind.period_rule_zh}")
        if ind.source_zh:
            lines.append(f"- 来源: {ind.source_zh}")
        if ind.target:
            lines.append(f"- Target: {target_text(ind)}")
        if ind.reference:
            lines.append(f"- Reference value: {ind.reference['value']:.2%} ({ind.reference['year']}), "
                         f"{ind.reference['source']}")
        lines += [f"- Source: {ind.source}", ""]
    for key, meta in defs.tier_indicators.items():
        lines += [f"### `{key}` — {meta['zh']} / {meta['en']}", "", f"- Source table: {meta['source_table']}",
                  f"- Rule: {' '.join(meta['period_rule'].split())}", ""]
    return "\n".join(lines)
