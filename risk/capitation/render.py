"""Capitation report outputs: CSV (UTF-8 with BOM), XLSX (real number formats), HTML (one printable file).

Chinese first, with the county's terms: 定额 (quota), 结余留用 (surplus kept), 合理超支分担 (reasonable
overspend shared). Rows describing fewer than `min_count` patients (management units, tiers) are hidden.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from risk.capitation.expected import METHOD_LABELS
from risk.capitation.report import CapitationReport
from risk.errors import RiskUserError
from risk.spreadsheet import inert_frame, write_csv

FORMATS = ("html", "csv", "xlsx")
YUAN, PCT, RATIO, COUNT = "#,##0", "0.0%", "0.00", "#,##0"

# column -> (Chinese / English header, Excel number format)
TOWNSHIP_COLUMNS: dict[str, tuple[str, str]] = {
    "township_id": ("乡镇卫生院 township", "@"),
    "persons": ("包干患者数 patients", COUNT),
    "member_months": ("人月数 member-months", COUNT),
    "budget_year": ("全年定额预算 year budget (定额)", YUAN),
    "budget_ytd": ("累计预算 budget to date", YUAN),
    "spend": ("累计基金支出 fund spend to date", YUAN),
    "pmpm": ("人月均支出 PMPM", YUAN),
    "burn_rate": ("预算执行率 burn rate", PCT),
    "outside_share": ("县外支出占比 outside-county share", PCT),
    "inpatient_share": ("住院支出占比 inpatient share", PCT),
    "surplus_ytd": ("累计结余 surplus to date", YUAN),
    "expected_ytd": ("风险调整预期支出 expected spend", YUAN),
    "oe": ("实际/预期 O/E", RATIO),
    "oe_low": ("O/E 95%下限 low", RATIO),
    "oe_high": ("O/E 95%上限 high", RATIO),
    "budget_ytd_risk_adjusted": ("风险调整预算 risk-adjusted budget", YUAN),
    "surplus_ytd_risk_adjusted": ("风险调整结余 risk-adjusted surplus", YUAN),
    "projected_spend": ("预计全年支出 projected spend", YUAN),
    "projected_surplus": ("预计全年结余 projected surplus", YUAN),
    "projected_surplus_low": ("预计结余 95%下限 low", YUAN),
    "projected_surplus_high": ("预计结余 95%上限 high", YUAN),
    "kept": ("结余留用 surplus kept", YUAN),
    "to_fund": ("考核扣回基金 returned to fund", YUAN),
    "unit_bears": ("超支由卫生院承担 overspend borne by unit", YUAN),
    "fund_bears": ("合理超支分担(基金) reasonable overspend borne by fund", YUAN),
    "county": ("县级 county share", YUAN),
    "township": ("乡级 township share", YUAN),
    "village": ("村级 village share", YUAN),
    "whatif_projected_surplus": ("情景预计结余 what-if projected surplus", YUAN),
}
SUMMARY_COLUMNS: dict[str, tuple[str, str]] = {
    "persons": TOWNSHIP_COLUMNS["persons"],
    "member_months": TOWNSHIP_COLUMNS["member_months"],
    "budget_ytd": TOWNSHIP_COLUMNS["budget_ytd"],
    "spend": TOWNSHIP_COLUMNS["spend"],
    "spend_inpatient": ("住院基金支出 inpatient spend", YUAN),
    "spend_outside": ("县外基金支出 outside-county spend", YUAN),
    "spend_drugs": ("药品支出(处方) drug spend (prescription feed)", YUAN),
    "pmpm": TOWNSHIP_COLUMNS["pmpm"],
    "burn_rate": TOWNSHIP_COLUMNS["burn_rate"],
    "outside_share": TOWNSHIP_COLUMNS["outside_share"],
    "inpatient_share": TOWNSHIP_COLUMNS["inpatient_share"],
}
MONTHLY_COLUMNS: dict[str, tuple[str, str]] = {
    "township_id": TOWNSHIP_COLUMNS["township_id"],
    "month": ("月份 month", "0"),
    "budget": ("当月预算 budget", YUAN),
    "spend": ("当月支出 spend", YUAN),
    "budget_cum": ("累计预算 cumulative budget", YUAN),
    "spend_cum": ("累计支出 cumulative spend", YUAN),
    "budget_remaining": ("剩余预算 budget remaining", YUAN),
}
EVALUATION_COLUMNS: dict[str, tuple[str, str]] = {
    "window": ("评估窗口 window", "@"),
    "method": ("方法 method", "@"),
    "n": ("人数 n", COUNT),
    "mae": ("平均绝对误差 MAE (yuan)", YUAN),
    "r2": ("R²", "0.000"),
    "predicted_over_observed": ("预测/实际 predicted/observed", RATIO),
    "decile_max_abs_oe_minus_1": ("十分位校准最大偏差 max |O/E−1| by decile", RATIO),
}


def _labelled(table: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> pd.DataFrame:
    present = [c for c in columns if c in table.columns]
    return table[present].rename(columns={c: columns[c][0] for c in present})


def hide_small(table: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Blank the money and rate cells of rows describing fewer than min_count patients."""
    table = table.copy()
    small = table["persons"] < min_count
    value_columns = [c for c in table.columns if c not in ("township_id", "unit_id", "tier", "persons")]
    table[value_columns] = table[value_columns].astype(float)
    table.loc[small, value_columns] = float("nan")
    return table


def about_rows(report: CapitationReport) -> list[tuple[str, str]]:
    defs, rule = report.definitions, report.definitions.year(report.year)
    split = report.split
    rows = [
        ("年度 year", str(report.year)),
        ("数据截至 as of", f"{report.as_of} ({report.months_observed} 个完整月 complete months)"),
        (
            "定额 quota",
            f"{rule.quota:,.0f} 元/人/年 + 签约 {rule.signing_supplement:,.0f} 元 (signed supplement)",
        ),
        (
            "包干对象 who counts",
            f"{', '.join(defs.conditions)} 在管患者, 自 {defs.pilot_start} 起 (pilot patients)",
        ),
        ("预算单位 budget holder", "乡镇卫生院 township health centre"),
        ("人月规则 partial month", f"{defs.partial_month}, reference day {defs.reference_day}"),
        ("计入支出 spend counted", f"{', '.join(defs.settings)}; {', '.join(defs.facility_levels)}"),
        ("结余留用 surplus split", f"{report.split_name or str(report.year)}: {split.label()}"),
        (
            "合理超支分担 overspend rule",
            f"≤ {rule.overspend.reasonable_cap_share:.0%} of budget is reasonable; unit bears "
            f"{rule.overspend.unit_share:.0%} of it, the fund the rest; beyond the cap the unit bears all",
        ),
        ("定义版本 definitions version", defs.version),
    ]
    rows += [(f"说明 note {i + 1}", note) for i, note in enumerate(report.notes)]
    rows += [(k, v) for k, v in report.provenance.items()]
    return rows


def capitation_report_file(
    run: str | Path,
    year: int,
    out: str | Path,
    fmt: str | None = None,
    by: str = "township",
    runs_root: str | Path | None = None,
    split: str | None = None,
    what_if: str | None = None,
    definitions: str | Path | None = None,
    min_count: int | None = None,
) -> tuple[Path, CapitationReport]:
    """Build the capitation report of `year` from `run` and write it as html / csv / xlsx."""
    from risk.capitation.report import build_capitation_report
    from risk.indicators.definitions import indicator_set

    fmt = (fmt or Path(out).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RiskUserError(f"unknown report format '{fmt}'; use one of {', '.join(FORMATS)}")
    if by not in ("township", "unit", "tier"):
        raise RiskUserError(f"--by must be township, unit or tier for the capitation report, not '{by}'")
    report = build_capitation_report(
        run, year, runs_root=runs_root, definitions_path=definitions, split=split, what_if=what_if
    )
    k = indicator_set().min_count if min_count is None else min_count
    return write_capitation_report(report, out, fmt=fmt, by=by, min_count=k), report


def township_records(report: CapitationReport) -> list[dict[str, Any]]:
    """The township table (and county row) as plain records, for the serving store."""
    columns = [c for c in TOWNSHIP_COLUMNS if c in report.township.columns]
    return report.township[columns].to_dict(orient="records")


def write_capitation_report(
    report: CapitationReport,
    out: str | Path,
    fmt: str | None = None,
    by: str = "township",
    min_count: int = 10,
) -> Path:
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RiskUserError(f"unknown report format '{fmt}'; use one of {', '.join(FORMATS)}")
    tables = report_tables(report, by, min_count)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        write_csv(tables["main"][0], out, float_format="%.4f")
    elif fmt == "xlsx":
        _write_xlsx(out, report, tables)
    else:
        out.write_text(render_html(report, tables), encoding="utf-8")
    return out


def report_tables(report: CapitationReport, by: str, min_count: int) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Labelled tables: main (the `by` breakdown), monthly, tier, unit, evaluation."""
    if by == "township":
        main = (_labelled(report.township, TOWNSHIP_COLUMNS), TOWNSHIP_COLUMNS)
    elif by in ("unit", "tier"):
        source = report.by_unit if by == "unit" else report.by_tier
        key = "unit_id" if by == "unit" else "tier"
        columns = {key: ("管理单元 unit" if by == "unit" else "分层 tier", "@"), **SUMMARY_COLUMNS}
        main = (_labelled(hide_small(source, min_count), columns), columns)
    else:
        raise RiskUserError(f"--by must be township, unit or tier, not '{by}'")
    tier_columns = {"tier": ("分层 tier", "@"), **SUMMARY_COLUMNS}
    unit_columns = {"unit_id": ("管理单元 unit", "@"), **SUMMARY_COLUMNS}
    tables = {
        "main": main,
        "monthly": (_labelled(report.monthly, MONTHLY_COLUMNS), MONTHLY_COLUMNS),
        "tier": (_labelled(hide_small(report.by_tier, min_count), tier_columns), tier_columns),
        "unit": (_labelled(hide_small(report.by_unit, min_count), unit_columns), unit_columns),
    }
    if report.evaluation is not None:
        evaluation = report.evaluation.table.copy()
        evaluation["method"] = evaluation["method"].map(METHOD_LABELS)
        tables["evaluation"] = (_labelled(evaluation, EVALUATION_COLUMNS), EVALUATION_COLUMNS)
    return tables


def _write_xlsx(out: Path, report: CapitationReport, tables: dict[str, tuple[pd.DataFrame, dict]]) -> None:
    names = {
        "main": "包干 capitation",
        "monthly": "月度 monthly",
        "tier": "分层 tier",
        "unit": "单元 unit",
        "evaluation": "模型评估 model",
    }
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        for key, (table, columns) in tables.items():
            sheet = names[key]
            table = inert_frame(table)  # openpyxl would make a formula of a cell starting with '='
            table.to_excel(writer, sheet_name=sheet, index=False)
            ws = writer.sheets[sheet]
            formats = [fmt for _, fmt in columns.values() if _ in table.columns]
            for j, fmt in enumerate(formats, start=1):
                ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = 16
                for i in range(2, len(table) + 2):
                    ws.cell(row=i, column=j).number_format = fmt
            ws.freeze_panes = "B2"
        about = pd.DataFrame(about_rows(report), columns=["项目 item", "内容 value"])
        inert_frame(about).to_excel(writer, sheet_name="说明 about", index=False)
        writer.sheets["说明 about"].column_dimensions["B"].width = 100


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if fmt == YUAN:
        return f"{value:,.0f}"
    if fmt == PCT:
        return f"{value:.1%}"
    if fmt == RATIO:
        return f"{value:.2f}"
    if fmt in ("0.000",):
        return f"{value:.3f}"
    if fmt == "0":
        return f"{int(value)}"
    return str(value)


def html_rows(table: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> list[list[str]]:
    formats = {label: fmt for label, fmt in columns.values()}
    return [[_fmt(row[c], formats[c]) for c in table.columns] for _, row in table.iterrows()]


# The capitation section as a person reads it (county overview: one language; the analyst report: Chinese).
SECTION_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "heading": "慢病小包干：定额预算与基金支出（结余留用，合理超支分担）",
        "sub": "{year} 年 · 数据截至 {as_of}（{months} 个完整月）· 定额 {quota} 元/人/年，"
        "签约另加 {supplement} 元 · 结余留用 县:乡:村 = {split}",
        "league": "风险调整排名（实际 / 预期基金支出，95% 区间）",
        "township": "乡镇",
        "oe": "实际 / 预期",
        "ci": "95% 区间",
        "surplus": "累计结余（元）",
        "surplus_ra": "风险调整结余（元）",
        "projected": "预计全年结余（元）",
        "note": "实际 / 预期 大于 1：该乡镇患者花费的基金多于同年龄、性别、病种和并发症的患者"
        "预期应花费的（预期不含既往支出）；红色 = 整个区间高于 1，绿色 = 整个区间低于 1。"
        "风险调整结余：全县累计预算按各乡镇预期支出分配后，减去实际支出。",
        "budget_alt": "各乡镇预算与基金支出",
        "burn_alt": "全县预算余额（按月）",
        "county": "全县",
        "chart_budget_title": "各乡镇全年预算与基金支出",
        "chart_budget": "全年预算",
        "chart_spend": "累计支出",
        "chart_projected": "预计全年支出（95% 区间）",
        "chart_unit": "万元",
        "chart_burn_title": "全县预算余额",
        "chart_burn_plan": "按进度使用时的余额",
        "chart_burn_actual": "实际余额",
        "chart_month": "月",
    },
    "en": {
        "heading": "Chronic-disease capitation: budget and fund spend "
        "(surplus kept, reasonable overspend shared)",
        "sub": "{year} · data as of {as_of} ({months} complete months) · quota {quota} yuan per person-year, "
        "{supplement} more when signed · surplus kept county:township:village = {split}",
        "league": "Risk-adjusted ranking (observed / expected fund spend, 95 % interval)",
        "township": "Township",
        "oe": "Observed / expected",
        "ci": "95 % interval",
        "surplus": "Surplus to date (yuan)",
        "surplus_ra": "Risk-adjusted surplus (yuan)",
        "projected": "Projected year-end surplus (yuan)",
        "note": "Observed / expected above 1: the township's patients cost the fund more than patients "
        "of their age, sex, conditions and complications are expected to (prior spend not used); red = "
        "the whole interval above 1, green = below 1. Risk-adjusted surplus: the county budget to date "
        "shared by expected spend, minus spend.",
        "budget_alt": "Budget and fund spend by township",
        "burn_alt": "County budget remaining by month",
        "county": "County",
        "chart_budget_title": "Year budget and fund spend by township",
        "chart_budget": "year budget",
        "chart_spend": "spend to date",
        "chart_projected": "projected year-end spend (95 % interval)",
        "chart_unit": "10,000 yuan",
        "chart_burn_title": "Budget remaining, county",
        "chart_burn_plan": "remaining if spent as prorated",
        "chart_burn_actual": "remaining (actual)",
        "chart_month": "month",
    },
}


def league_rows(report: CapitationReport, names: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Townships ordered by O/E (worst first) with the interval and the raw vs risk-adjusted surplus; the
    township's name from the geography when there is one."""
    names = names or {}
    t = report.township[report.township["township_id"] != "county"].sort_values("oe", ascending=False)
    return [
        {
            "township": names.get(str(r["township_id"])) or str(r["township_id"]),
            "oe": _fmt(r["oe"], RATIO),
            "ci": f"{_fmt(r['oe_low'], RATIO)}–{_fmt(r['oe_high'], RATIO)}",
            "flag": "high" if r["oe_low"] > 1 else "low" if r["oe_high"] < 1 else "",
            "surplus": _fmt(r["surplus_ytd"], YUAN),
            "surplus_ra": _fmt(r["surplus_ytd_risk_adjusted"], YUAN),
            "projected": _fmt(r["projected_surplus"], YUAN),
        }
        for _, r in t.iterrows()
    ]


def section_text(report: CapitationReport, lang: str) -> dict[str, str]:
    text = dict(SECTION_TEXT[lang])
    rule = report.definitions.year(report.year)
    split = report.split
    text["sub"] = text["sub"].format(
        year=report.year,
        as_of=report.as_of,
        months=report.months_observed,
        quota=f"{rule.quota:,.0f}",
        supplement=f"{rule.signing_supplement:,.0f}",
        split=":".join(f"{v * 10:g}" for v in (split.county, split.township, split.village)),
    )
    return text


def section(
    report: CapitationReport, lang: str = "zh", names: dict[str, str] | None = None, notes: bool = False
) -> dict[str, Any]:
    """The capitation section's content in one language: text, league table (names, not ids), charts."""
    from risk.capitation.charts import budget_chart, burn_down_chart
    from risk.indicators.charts import use_cjk_font

    names = report.township_names if names is None else names
    chart_text = SECTION_TEXT["zh" if lang == "zh" and use_cjk_font() else "en"]
    return {
        "report": report,
        "text": section_text(report, lang),
        "league": league_rows(report, names),
        "budget_chart": budget_chart(report.township, chart_text, names),
        "burn_chart": burn_down_chart(report.monthly, chart_text),
        "notes": report.notes if notes else [],
    }


def capitation_section(
    run_dir: str | Path,
    year: int,
    runs_root: str | Path | None = None,
    lang: str = "zh",
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What the county overview's capitation section shows: league table and the two charts, in `lang`, with
    township names; the modelling notes stay in the analyst report."""
    from risk.capitation.report import build_capitation_report

    report = build_capitation_report(run_dir, year, runs_root=runs_root)
    return section(report, lang, names)


def render_html(report: CapitationReport, tables: dict[str, tuple[pd.DataFrame, dict]]) -> str:
    from risk.indicators.report import template_environment

    env = template_environment()
    env.loader = _loader(env.loader)
    sections = []
    titles = {
        "main": "按乡镇 by township",
        "monthly": "月度执行 monthly",
        "tier": "按分层 by tier (spend of the tier held each month)",
        "unit": "按管理单元 by unit",
        "evaluation": "预期支出模型评估 expected-spend model evaluation",
    }
    for key, (table, columns) in tables.items():
        if key == "monthly":
            continue
        rows = html_rows(table, columns)
        sections.append({"title": titles[key], "header": list(table.columns), "rows": rows})
    return env.get_template("capitation.html.j2").render(
        report=report,
        sections=sections,
        about=about_rows(report),
        cap=section(report, "zh", notes=True),
    )


def _loader(fallback: Any) -> Any:
    import jinja2

    return jinja2.ChoiceLoader([jinja2.PackageLoader("risk.capitation", "templates"), fallback])
