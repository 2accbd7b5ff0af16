"""Exports of one indicator: HTML (self-contained, printable), CSV (UTF-8 with BOM) and XLSX.

Everything exported goes through small-cell suppression first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.indicators.charts import trend_chart, units_chart
from risk.indicators.definitions import Indicator
from risk.indicators.engine import RESULT_COLUMNS, compute_indicator
from risk.indicators.periods import Grain, Period, parse_period, split_period
from risk.indicators.run import Run, open_run
from risk.indicators.suppression import suppress_indicator_table
from risk.spreadsheet import XLSXWRITER_OPTIONS, inert_frame, inert_text, write_csv, write_xlsx

FORMATS = ("html", "csv", "xlsx")
# the engine's result columns, with the names in both languages first and the suppression flag last
EXPORT_COLUMNS = [
    "indicator_id", "name_zh", "name_en", *RESULT_COLUMNS[1:], "suppressed",
]
# Column headers of the analyst exports: Chinese (CSV and XLSX by default), the machine name in English.
EXPORT_HEADERS_ZH = {
    "indicator_id": "指标代码",
    "name_zh": "指标名称",
    "name_en": "指标名称（英文）",
    "definition": "口径",
    "period": "统计期",
    "period_start": "开始日期",
    "period_end": "结束日期",
    "level": "层级",
    "unit": "地区 / 单位",
    "numerator": "分子（人）",
    "denominator": "分母（人）",
    "persons": "人数",
    "value": "数值",
    "ci_low": "95% 置信区间下限",
    "ci_high": "95% 置信区间上限",
    "target": "目标",
    "meets_target": "是否达标",
    "suppressed": "隐藏原因",
}
LANGUAGES = ("zh", "en")


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("risk.indicators", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def indicator_table(
    run: Run,
    indicator_id: str,
    period: Period | str,
    by: str = "township",
    over: Grain | None = None,
    min_count: int | None = None,
) -> pd.DataFrame:
    """The suppressed export table: `by` units plus the county total, for `period` or its sub-periods."""
    indicator = run.definitions.get(indicator_id)
    period = period if isinstance(period, Period) else parse_period(period)
    periods: Sequence[Period] = split_period(period, over) if over else [period]
    levels = ["county"] if by == "county" else ["county", by]
    table = compute_indicator(run, indicator_id, periods, by=levels)
    k = run.definitions.min_count if min_count is None else min_count
    table = suppress_indicator_table(table, k, rate=indicator.is_rate)
    table.insert(1, "name_zh", indicator.zh)
    table.insert(2, "name_en", indicator.en)
    return table[EXPORT_COLUMNS]


def format_value(value: Any, is_rate: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    return f"{value:.1%}" if is_rate else f"{value:,.1f}"


def target_text(indicator: Indicator) -> str:
    if not indicator.target:
        return ""
    sign = "≥" if indicator.target.direction == "at_least" else "≤"
    years = ", ".join(f"{sign} {v:.0%} ({y})" for y, v in sorted(indicator.target.by_year.items()))
    return f"{years}. {indicator.target.rule}. {indicator.target.source}"


def html_rows(table: pd.DataFrame, indicator: Indicator) -> list[dict[str, Any]]:
    rows = []
    for row in table.itertuples(index=False):
        hidden = bool(row.suppressed)
        count = lambda v: "—" if v is pd.NA or v != v else f"{v:,.0f}"  # noqa: E731
        met = row.meets_target
        rows.append(
            {
                "period": row.period,
                "level": row.level,
                "unit": row.unit,
                "numerator_text": "" if indicator.kind == "mean_per_person" else count(row.numerator),
                "denominator_text": count(row.denominator),
                "value_text": format_value(row.value, indicator.is_rate),
                "ci_text": "" if pd.isna(row.ci_low) else f"{row.ci_low:.1%}–{row.ci_high:.1%}",
                "target_text": ""
                if pd.isna(row.target)
                else ("✓ " if met else "✗ " if met is False else "") + format_value(row.target, True),
                "status_class": "met" if met is True else "notmet" if met is False else "",
                "note": f"hidden ({row.suppressed})" if hidden else "",
            }
        )
    return rows


def render_indicator_html(
    run: Run,
    table: pd.DataFrame,
    indicator: Indicator,
    period: str,
    by: str,
    over: str | None,
    min_count: int,
) -> str:
    charts = []
    units = table[table["level"] != "county"]
    if over and indicator.is_rate:
        county = table[table["level"] == "county"]
        charts.append(
            {
                "alt": f"{indicator.en} trend",
                "uri": trend_chart({"county": county}, f"{indicator.en}, county", None),
            }
        )
    if len(units) and not over:
        target = units["target"].dropna()
        uri = units_chart(
            units,
            f"{indicator.en} by {by}, {period}",
            indicator.is_rate,
            float(target.iloc[0]) if len(target) else None,
        )
        charts.append({"alt": f"{indicator.en} by {by}", "uri": uri} if uri else None)
    return (
        template_environment()
        .get_template("report.html.j2")
        .render(
            ind=indicator,
            period=period,
            by=by,
            over=over,
            rows=html_rows(table, indicator),
            charts=[c for c in charts if c],
            target_text=target_text(indicator),
            min_count=min_count,
            provenance=run.provenance(),
        )
    )


def write_indicator_report(
    run_dir: str | Path,
    indicator_id: str,
    period: str,
    out: str | Path,
    by: str = "township",
    fmt: str | None = None,
    over: Grain | None = None,
    min_count: int | None = None,
    lang: str = "zh",
) -> Path:
    """Write one indicator for `period` by `by` (county / township / unit / team / village / tier).

    fmt: html | csv | xlsx (default: from the file suffix). `over` splits the period into months,
    quarters or years. CSV is UTF-8 with a byte-order mark so Excel (zh-CN) opens it correctly; its header
    is Chinese, or the English machine names with lang="en". XLSX: Chinese header with the machine names
    as a second header row, rates and money as number formats, sheets describing the run and every
    indicator.
    """
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RiskUserError(f"unknown report format '{fmt}'; use one of {', '.join(FORMATS)}")
    if lang not in LANGUAGES:
        raise RiskUserError(f"--lang must be zh or en, not '{lang}'")
    with open_run(run_dir) as run:
        indicator = run.definitions.get(indicator_id)
        k = run.definitions.min_count if min_count is None else min_count
        table = indicator_table(run, indicator_id, period, by=by, over=over, min_count=k)
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            headed = table if lang == "en" else table.rename(columns=EXPORT_HEADERS_ZH)
            write_csv(headed, out)  # inert text, UTF-8 with BOM
        elif fmt == "xlsx":
            about = _about_sheet(run, indicator, period, by, k)
            catalogue = list(run.definitions.indicators.values())
            write_indicator_xlsx(out, table, indicator, about, catalogue, lang)
        else:
            out.write_text(
                render_indicator_html(run, table, indicator, str(period), by, over, k), encoding="utf-8"
            )
    return out


def write_indicator_xlsx(
    out: Path, table: pd.DataFrame, indicator: Indicator, about: pd.DataFrame, catalogue: list[Indicator],
    lang: str = "zh",
) -> None:
    """The XLSX an analyst opens: numbers stay numbers with number formats (0.0 % for rates, #,##0.00 for
    yuan, #,##0 for counts), text is always written as text (never a formula), dates as dates."""
    import xlsxwriter

    zh = lang == "zh"
    table = inert_frame(table)  # a text cell starting with = + - @ is escaped like every export
    book = xlsxwriter.Workbook(str(out), {**XLSXWRITER_OPTIONS, "nan_inf_to_errors": False})
    try:
        head = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True})
        sub = book.add_format({"italic": True, "font_color": "#555555", "bg_color": "#EEF2F8", "border": 1})
        pct = book.add_format({"num_format": "0.0%"})
        money = book.add_format({"num_format": "#,##0.00"})
        count = book.add_format({"num_format": "#,##0"})
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        wrap = book.add_format({"text_wrap": True, "valign": "top"})
        value_fmt = pct if indicator.is_rate else money
        formats = {"numerator": count, "denominator": count, "persons": count, "value": value_fmt,
                   "ci_low": pct, "ci_high": pct, "target": pct, "period_start": day, "period_end": day}
        sheet = book.add_worksheet("指标" if zh else "indicator")
        columns = list(table.columns)
        header_rows = 2 if zh else 1
        for c, column in enumerate(columns):
            sheet.write_string(0, c, EXPORT_HEADERS_ZH.get(column, column) if zh else column, head)
            if zh:
                sheet.write_string(1, c, column, sub)
        for r, row in enumerate(table.itertuples(index=False), start=header_rows):
            for c, (column, value) in enumerate(zip(columns, row, strict=True)):
                _write_cell(sheet, r, c, value, formats.get(column), zh)
        sheet.freeze_panes(header_rows, 0)
        sheet.autofilter(header_rows - 1, 0, header_rows - 1 + len(table), len(columns) - 1)
        for c, column in enumerate(columns):
            sheet.set_column(c, c, 34 if column.startswith("name") else 14)

        about_sheet = book.add_worksheet("本表说明" if zh else "about")
        about_sheet.write_row(0, 0, ["项目" if zh else "item", "内容" if zh else "value"], head)
        for r, (item, value) in enumerate(zip(about["item"], about["value"], strict=True), start=1):
            about_sheet.write_string(r, 0, str(item))
            about_sheet.write_string(r, 1, inert_text(str(value)), wrap)
        about_sheet.set_column(0, 0, 26)
        about_sheet.set_column(1, 1, 100)

        guide = book.add_worksheet("指标定义" if zh else "indicators")
        guide_columns = [
            ("id", "指标代码"), ("name_zh", "指标名称"), ("name_en", "名称（英文）"), ("definition", "口径"),
            ("unit", "数值单位"), ("rule", "计算方法"), ("target", "目标"), ("source", "来源"),
        ]
        for c, (en, zh_name) in enumerate(guide_columns):
            guide.write_string(0, c, zh_name if zh else en, head)
        for r, item in enumerate(catalogue, start=1):
            if item.is_rate:
                unit = "比例（%）" if zh else "proportion (%)"
            else:
                unit = "元 / 人" if zh else "yuan / person"
            rule = " ".join(item.rule_text("zh" if zh else "en").split())
            values = [item.id, item.zh, item.en, item.definition_label, unit, rule, target_text(item),
                      item.source_text("zh" if zh else "en")]
            for c, value in enumerate(values):
                guide.write_string(r, c, inert_text(str(value)), wrap)
        for c, width in enumerate([26, 30, 36, 30, 12, 80, 40, 50]):
            guide.set_column(c, c, width)
        guide.freeze_panes(1, 1)
    finally:
        book.close()


def _write_cell(sheet: Any, row: int, col: int, value: Any, fmt: Any, zh: bool) -> None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        sheet.write_blank(row, col, None)
    elif isinstance(value, bool | np.bool_):
        sheet.write_string(row, col, ("是" if value else "否") if zh else ("yes" if value else "no"))
    elif isinstance(value, int | float | np.integer | np.floating):
        sheet.write_number(row, col, float(value), fmt)
    elif hasattr(value, "year") and hasattr(value, "month"):
        sheet.write_datetime(row, col, pd.Timestamp(value).to_pydatetime(), fmt)
    else:
        sheet.write_string(row, col, str(value))


def _about_sheet(run: Run, indicator: Indicator, period: str, by: str, k: int) -> pd.DataFrame:
    items = {
        "indicator": f"{indicator.id}: {indicator.zh} / {indicator.en}",
        "definition": indicator.definition_label,
        "period": str(period),
        "breakdown": by,
        "period_rule": indicator.period_rule,
        "source": indicator.source,
        "target": target_text(indicator),
        "suppression": f"cells describing fewer than {k} people hidden (primary), plus complementary cells "
        "so that hidden values cannot be recovered from totals (secondary)",
        "geography": "current township / unit / team of each patient (no address history in the register)",
        **run.provenance(),
    }
    return pd.DataFrame({"item": list(items), "value": list(items.values())})


def write_tier_report(
    indicator_id: str,
    run_dir: str | Path,
    out: str | Path,
    fmt: str | None = None,
    previous: str | Path | None = None,
    runs_root: str | Path | None = None,
    min_count: int | None = None,
) -> Path:
    """Export tier_mix (runs under `runs_root`, default the run's parent) or tier_transitions (`previous`
    run -> `run_dir`), suppressed, as html / csv / xlsx."""
    from risk.indicators.definitions import indicator_set
    from risk.indicators.tiers import tier_mix, tier_transitions
    from risk.run.history import find_runs

    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RiskUserError(f"unknown report format '{fmt}'; use one of {', '.join(FORMATS)}")
    defs = indicator_set()
    k = defs.min_count if min_count is None else min_count
    if indicator_id == "tier_transitions":
        if previous is None:
            raise RiskUserError("tier_transitions needs --previous RUN_DIR (the earlier run)")
        table = tier_transitions(previous, run_dir, min_count=k).reset_index()
    elif indicator_id == "tier_mix":
        runs = find_runs(runs_root) if runs_root else [Path(run_dir)]
        table = tier_mix(runs, min_count=k)
    else:
        raise RiskUserError(f"'{indicator_id}' is not a tier indicator")
    meta = defs.tier_indicators[indicator_id]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        write_csv(table, out)
    elif fmt == "xlsx":
        about = pd.DataFrame(
            {
                "item": ["indicator", "rule", "suppression"],
                "value": [
                    f"{meta['zh']} / {meta['en']}",
                    " ".join(meta["period_rule"].split()),
                    f"cells under {k} persons hidden, with row/column totals protected",
                ],
            }
        )
        write_xlsx(out, {indicator_id: table, "about": about})
    else:
        env = jinja2.Environment(autoescape=True)
        body = table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}")
        page = env.from_string(
            "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{{ m.zh }}</title>"
            "<style>{{ css }}</style></head><body><h1>{{ m.zh }}</h1><p class='sub'>{{ m.en }}</p>"
            "<div class='box'>{{ rule }}</div>{{ body | safe }}<p class='note'>Cells under {{ k }} persons "
            "hidden.</p></body></html>"
        )
        css = template_environment().get_template("style.css.j2").render()
        out.write_text(
            page.render(m=meta, rule=" ".join(meta["period_rule"].split()), body=body, k=k, css=css),
            encoding="utf-8",
        )
    return out
