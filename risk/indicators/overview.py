"""County overview report: one self-contained, printable HTML page for the county health commission."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from risk.errors import RiskUserError
from risk.indicators.cascade import overview_block
from risk.indicators.charts import tier_mix_chart, trend_chart, units_chart, use_cjk_font
from risk.indicators.engine import compute_indicator
from risk.indicators.periods import Period, parse_period, period_containing, trailing_periods
from risk.indicators.report import format_value, template_environment
from risk.indicators.run import Run, open_run
from risk.indicators.suppression import suppress_indicator_table
from risk.indicators.tiers import tier_mix, tier_transitions
from risk.run.history import find_runs

log = logging.getLogger("risk.indicators.overview")

HEADLINE = [
    "bp_control_cn",
    "bp_control_cn_followed",
    "bp_control_hearts",
    "glucose_control_fpg",
    "glucose_control_hba1c",
    "standardised_management_hypertension",
    "standardised_management_diabetes",
    "signing_rate",
    "admission_rate",
    "complication_incidence",
    "outside_county_share",
    "cost_per_patient",
    "fund_per_patient",
]
LEAGUE = [
    "bp_control_cn",
    "bp_control_hearts",
    "glucose_control_fpg",
    "standardised_management_hypertension",
    "signing_rate",
    "admission_rate",
]
TRENDS = {
    "bp": ["bp_control_cn", "bp_control_hearts"],
    "glucose": ["glucose_control_fpg", "glucose_control_hba1c"],
}
COST_BY_TIER = ["cost_per_patient", "fund_per_patient"]
LANGUAGES = ("zh", "en")
TIERS = ("red", "yellow", "green")

# Every word on the page, in both languages: the page is Chinese unless --lang en.
TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "慢病管理县域概览",
        "period": "统计期",
        "as_of": "数据截至",
        "box": "血压控制率按两种口径列出：<b>国家基本公卫口径</b>（统计期内最近一次血压，全部在管患者，"
               "无血压记录按未控制计）和 <b>WHO HEARTS 口径</b>（统计期最后 3 个月内最近一次血压，"
               "3 个月前已登记且仍在管的患者）。目标：血压、血糖控制率 2023 年 ≥ 60%，2025 年 ≥ 80%"
               "（界首市 2023 年综合医改方案）；每年按当年或之前最近一次设定的目标判断。",
        "s1": "1. 主要指标与目标",
        "indicator": "指标",
        "definition": "口径",
        "value": "数值",
        "ci": "95% 置信区间",
        "n": "人数",
        "target": "目标",
        "reference": "公开参考值",
        "s2": "2. 乡镇排名",
        "township": "乡镇",
        "league_note": "按国家口径血压控制率排序。绿色 = 达到目标，红色 = 未达到。“—” = 不显示："
                       "该格人数少于 {k} 人，或为防止由全县合计反推而隐藏。患者按现住乡镇统计。",
        "dropped": "未列出“{names}”：每个乡镇的该项数值都涉及少于 {k} 人（例如未签约的患者），"
                   "分乡镇显示会暴露个人；全县数值见第 1 部分。",
        "county": "全县",
        "s3": "3. 趋势",
        "trend_bp": "血压控制率（全县，按季度）",
        "trend_glucose": "血糖控制率（全县，按季度）",
        "target_label": "{year} 年目标 ≥ {value:.0%}",
        "seasonal": "每年第一季度的控制率明显偏低（平均低 {gap:.0f} 个百分点）。主要原因是冬季血压本身偏高"
                    "（1 月最高，夏季最低）；春节前后随访也较少，季度内没有血压记录的患者按“未控制”计。"
                    "请与上年同一季度比较，不要与上一季度比较。",
        "s4": "4. 风险分级",
        "mix_title": "在管患者红黄绿构成（按运行日期）",
        "as_of_col": "截至日期",
        "transitions": "分级变化 {a} → {b}（人）",
        "then_now": "上次 \\ 本次",
        "transitions_note": "少于 {k} 人的格子显示为“< {k}”。",
        "cost_title": "{name}，按分级（{period}）",
        "cost_tier": "分级",
        "yuan": "元 / 人",
        "patients": "人数",
        "no_tiers": "本次运行没有分级结果，不显示分级构成、变化和分级费用。",
        "cascade_title": "随访外呼进展（{month}，本月截至数据日）",
        "cascade_step": "步骤",
        "cascade_note": "人数：分子 / 分母（比例）。“·” = 不显示：少于 {k} 人，或可由全县合计反推。",
        "s5": "5. 指标定义与来源",
        "rule": "计算方法",
        "source": "来源",
        "ci_note": "95% 置信区间为 Wilson 区间（以人为单位）。小格处理见第 2 部分。",
        "red": "红",
        "yellow": "黄",
        "green": "绿",
        "new": "新纳入",
        "left": "退出管理",
        "untiered": "未分级",
        "prov_run": "运行",
        "prov_as_of": "数据截至",
        "prov_data_fingerprint": "数据指纹",
        "prov_contract_version": "数据规范版本",
        "prov_indicator_definitions_version": "指标定义版本",
        "prov_rule_set_version": "分级规则版本",
        "prov_code_version": "程序版本",
    },
    "en": {
        "title": "County chronic-disease management overview",
        "period": "Period",
        "as_of": "data as of",
        "box": "BP control is shown under two definitions: the <b>Chinese national definition</b> "
               "(latest BP in the period, all managed patients, no BP = not controlled) and the "
               "<b>WHO HEARTS definition</b> (latest BP in the last 3 months of the period, patients "
               "registered before them and under care). "
               "Targets: BP and glucose control ≥ 60 % in 2023, ≥ 80 % in 2025 (Jieshou 2023 health reform "
               "plan); a year is judged against the latest target set on or before it.",
        "s1": "1. Headline indicators against targets",
        "indicator": "Indicator",
        "definition": "Definition",
        "value": "Value",
        "ci": "95% CI",
        "n": "Patients",
        "target": "Target",
        "reference": "Published figure",
        "s2": "2. Township league table",
        "township": "Township",
        "league_note": "Ordered by BP control (Chinese definition). Green = target met, red = not met. "
                       "\"—\" = hidden: fewer than {k} people behind the cell, or hidden so it cannot be "
                       "recovered from the county total. Patients are counted in their current township.",
        "dropped": "Not listed: {names}. Every township's value rests on fewer than {k} people (for example "
                   "the patients not signed), so township values would expose individuals; "
                   "the county value is in section 1.",
        "county": "County",
        "s3": "3. Trends",
        "trend_bp": "BP control, county, by quarter",
        "trend_glucose": "Glucose control, county, by quarter",
        "target_label": "{year} target ≥ {value:.0%}",
        "seasonal": "The first quarter of each year is clearly lower (by {gap:.0f} percentage points on "
                    "average), mainly because blood pressure itself is higher in winter (highest in "
                    "January); fewer follow-ups around the Spring Festival add to it, as patients with no BP "
                    "in the quarter count as not controlled. Compare a quarter with the same quarter a year "
                    "earlier, not with the quarter before.",
        "s4": "4. Risk tiers",
        "mix_title": "Tier mix of managed patients by run date",
        "as_of_col": "As of",
        "transitions": "Tier changes {a} → {b} (patients)",
        "then_now": "before \\ now",
        "transitions_note": "Cells with fewer than {k} patients are shown as \"< {k}\".",
        "cost_title": "{name} by tier ({period})",
        "cost_tier": "Tier",
        "yuan": "Yuan / patient",
        "patients": "Patients",
        "no_tiers": "This run has no tiers; tier mix, changes and cost by tier are not shown.",
        "cascade_title": "Follow-up calls ({month}, month to the data date)",
        "cascade_step": "Step",
        "cascade_note": "Patients: numerator / denominator (share). \"·\" = hidden: fewer than {k} "
                        "people, or recoverable from the county total.",
        "s5": "5. Definitions and sources",
        "rule": "How it is computed",
        "source": "Source",
        "ci_note": "95 % intervals are Wilson score intervals (persons as units). "
                   "Small cells: see section 2.",
        "red": "Red",
        "yellow": "Yellow",
        "green": "Green",
        "new": "New",
        "left": "Left care",
        "untiered": "Not tiered",
        "prov_run": "run",
        "prov_as_of": "data as of",
        "prov_data_fingerprint": "data fingerprint",
        "prov_contract_version": "data contract",
        "prov_indicator_definitions_version": "indicator definitions",
        "prov_rule_set_version": "tier rules",
        "prov_code_version": "code",
    },
}
DEFINITION_NAMES = {
    "chinese_national": {"zh": "国家基本公卫口径", "en": "Chinese national"},
    "who_hearts": {"zh": "WHO HEARTS 口径", "en": "WHO HEARTS"},
}
_FILE = re.compile(r"[\w./-]*\.(?:md|yaml|yml|csv|parquet|py)\b|RUN_DIR/?")
_ISSUE = re.compile(r"issue \d+", re.IGNORECASE)
_IDENTIFIER = re.compile(r"\b(?:[a-z]+\.)?([a-z0-9]+(?:_[a-z0-9]+)+)\b|\b[a-z]+\.([a-z]+)\b")


def public_text(text: str, lang: str = "en") -> str:
    """Source or rule text as a director reads it: no repository file names, issue numbers, backticks or
    snake_case / table.column identifiers (docs/indicators.md, for developers, keeps them)."""
    if not text:
        return ""
    text = text.replace("county-facts.md", "县级公开数据" if lang == "zh" else "published county figures")
    text = re.sub(r"[^.;]*--[a-z][^.;]*[.;]?", "", text)  # command-line hints ("Break down --by tier")
    kept = []
    for part in re.split(r"(?<=[;；])\s*", text):
        if _ISSUE.search(part):
            continue  # "variant requested in issue 6": project history, not a source
        part = re.sub(r"\(([^()]*)\)", lambda m: "" if _FILE.search(m.group(1)) else m.group(0), part)
        part = _FILE.sub("", part).replace("`", "")
        part = _IDENTIFIER.sub(lambda m: (m.group(1) or m.group(2)).replace("_", " "), part)
        part = " ".join(part.split()).strip(" ;；,:")
        if len(re.sub(r"[\W_]+", "", part)) >= 4:
            kept.append(part)
    return "; ".join(kept)


def default_period(run: Run) -> Period:
    """The quarter containing the run's as_of date (or the last BP measurement)."""
    day = run.as_of or run.last_data_date()
    if day is None:
        raise RiskUserError(f"{run.path}: no as_of date and no measurements; pass --period")
    return period_containing(day, "quarter")


def _cell(row: pd.Series, is_rate: bool) -> dict[str, Any]:
    met = row["meets_target"]
    return {
        "text": format_value(row["value"], is_rate),
        "hidden": bool(row["suppressed"]),
        "cls": "met" if met is True else "notmet" if met is False else "",
    }


def build_overview(
    run_dir: str | Path,
    out: str | Path,
    period: str | None = None,
    runs_root: str | Path | None = None,
    min_count: int | None = None,
    trend_quarters: int = 8,
    capitation: bool = True,
    lang: str = "zh",
) -> Path:
    """Write the county overview HTML: headline indicators vs targets, township league table, trends,
    tier mix over time (runs under `runs_root`, default: the run's parent folder), tier transitions and
    cost by tier, and the capitation (小包干) section of the period's year (`capitation=False` skips it).
    Returns the output path."""
    started = time.perf_counter()
    out = Path(out)
    if lang not in LANGUAGES:
        raise RiskUserError(f"--lang must be zh or en, not '{lang}'")
    text = TEXT[lang]
    # charts in Chinese only when a CJK font can draw them (else English labels, never empty boxes)
    chart_lang = "zh" if lang == "zh" and use_cjk_font() else "en"
    with open_run(run_dir) as run:
        names = run.place_names("township")
        defs = run.definitions
        k = defs.min_count if min_count is None else min_count
        target_period = parse_period(period) if period else default_period(run)
        trend_periods = trailing_periods(period_containing(target_period.end, "quarter"), trend_quarters)
        all_periods = sorted({*trend_periods, target_period})
        results: dict[str, pd.DataFrame] = {}
        for indicator_id in HEADLINE:
            levels = ["county", "township"]
            if run.has_tiers and indicator_id in COST_BY_TIER:
                levels.append("tier")
            results[indicator_id] = compute_indicator(run, indicator_id, all_periods, by=levels)
        headline = _headline(results, defs, target_period, k, lang)
        league, league_columns, dropped = _league(results, defs, target_period, k, lang, names)
        trends = _trends(results, defs, trend_periods, k, chart_lang)
        league_chart = _league_chart(results, defs, target_period, k, chart_lang, names)
        tiers = None
        if run.has_tiers:
            tiers = _tier_section(run, results, runs_root, target_period, k, lang, chart_lang)
        methods = [
            {"name": getattr(defs.get(i), lang), "rule": public_text(defs.get(i).rule_text(lang), lang),
             "source": public_text(defs.get(i).source_text(lang), lang)}
            for i in HEADLINE
        ]
        provenance = {text.get(f"prov_{key}", key): value for key, value in run.provenance().items()}
        cap = None
        if capitation:
            cap = _capitation_section(run.path, target_period.end.year, runs_root, lang, names)
        cascade = overview_block(run_dir, lang=lang, names=names)
        html = (
            template_environment()
            .get_template("overview.html.j2")
            .render(
                t=text,
                lang=lang,
                period=target_period,
                as_of=run.as_of or "",
                headline=headline,
                league=league,
                league_columns=[getattr(c, lang) for c in league_columns],
                dropped=", ".join(getattr(c, lang) for c in dropped),
                trends=trends,
                league_chart=league_chart,
                tiers=tiers,
                cap=cap,
                cascade=cascade,
                min_count=k,
                methods=methods,
                provenance=provenance,
                trend_span=f"{trend_periods[0]}–{trend_periods[-1]}",
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    log.info("county overview %s written in %.1f s", out, time.perf_counter() - started)
    return out


def _capitation_section(
    run_dir: Path, year: int, runs_root: str | Path | None, lang: str, names: dict[str, str]
) -> dict[str, Any] | None:
    """The capitation section (risk/capitation); when the run cannot give one (no rule for the year, no
    complete month of it, no pilot patient) the overview leaves it out and logs why."""
    from risk.capitation.render import capitation_section

    try:
        return capitation_section(run_dir, year, runs_root, lang=lang, names=names)
    except RiskUserError as exc:
        log.info("capitation section left out: %s", exc)
        return None


def _headline(
    results: dict[str, pd.DataFrame], defs: Any, period: Period, k: int, lang: str
) -> list[dict[str, Any]]:
    rows = []
    for indicator_id, table in results.items():
        indicator = defs.get(indicator_id)
        county = table[(table["period"] == period.id) & (table["level"] == "county")]
        county = suppress_indicator_table(county, k, rate=indicator.is_rate).iloc[0]
        reference = indicator.reference or {}
        rows.append(
            {
                "name": getattr(indicator, lang),
                "definition": DEFINITION_NAMES.get(indicator.definition, {}).get(lang, ""),
                **_cell(county, indicator.is_rate),
                "ci": "" if pd.isna(county["ci_low"]) else f"{county['ci_low']:.1%}–{county['ci_high']:.1%}",
                "n": "—" if pd.isna(county["denominator"]) else f"{county['denominator']:,.0f}",
                "target": ""
                if pd.isna(county["target"])
                else ("≥ " if indicator.target.direction == "at_least" else "≤ ") + f"{county['target']:.0%}",
                "reference": f"{reference['value']:.2%} ({reference['year']})" if reference else "",
            }
        )
    return rows


def _league(
    results: dict[str, pd.DataFrame],
    defs: Any,
    period: Period,
    k: int,
    lang: str,
    names: dict[str, str],
) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """Township rows, the columns shown and the columns left out because every township cell is hidden
    (a column of dashes tells a director nothing; the note under the table says why instead)."""
    indicators = [defs.get(i) for i in LEAGUE]
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for indicator in indicators:
        table = results[indicator.id]
        table = suppress_indicator_table(table[table["period"] == period.id], k, rate=indicator.is_rate)
        for _, row in table.iterrows():
            cells.setdefault(row["unit"], {})[indicator.id] = {
                **_cell(row, indicator.is_rate),
                "value": row["value"],
            }
    townships = [u for u in cells if u != "county"]
    columns = [c for c in indicators if not townships or any(
        not cells[u].get(c.id, {"hidden": True})["hidden"] for u in townships)]
    dropped = [c for c in indicators if c not in columns]
    empty = {"text": "", "hidden": False, "cls": "", "value": float("nan")}

    def sort_key(unit: str) -> float:
        value = cells[unit].get(LEAGUE[0], empty)["value"]
        return -value if pd.notna(value) else 1.0

    townships = sorted(townships, key=lambda u: (sort_key(u), names.get(u, u)))
    rows = [
        {"unit": names.get(u, u), "rank": i + 1, "cells": [cells[u].get(c.id, empty) for c in columns],
         "total": False}
        for i, u in enumerate(townships)
    ]
    if "county" in cells:
        rows.append(
            {
                "unit": TEXT[lang]["county"],
                "rank": "",
                "cells": [cells["county"].get(c.id, empty) for c in columns],
                "total": True,
            }
        )
    return rows, columns, dropped


def _target_lines(indicator: Any, lang: str) -> dict[str, float]:
    """Every target year of an indicator (2023 ≥ 60 %, 2025 ≥ 80 %), labelled for a chart."""
    if not indicator.target:
        return {}
    label = TEXT[lang]["target_label"]
    return {label.format(year=y, value=v): v for y, v in sorted(indicator.target.by_year.items())}


def _league_chart(
    results: dict[str, pd.DataFrame], defs: Any, period: Period, k: int, lang: str, names: dict[str, str]
) -> str | None:
    indicator = defs.get(LEAGUE[0])
    table = results[indicator.id]
    table = suppress_indicator_table(table[table["period"] == period.id], k, rate=True)
    townships = table[table["level"] == "township"].copy()
    townships["name"] = [names.get(u, u) for u in townships["unit"]]
    title = f"{getattr(indicator, lang)}, {period}" if lang == "en" else f"{indicator.zh}（{period}）"
    return units_chart(townships, title, True, _target_lines(indicator, lang) or None)


def _trends(
    results: dict[str, pd.DataFrame], defs: Any, periods: list[Period], k: int, lang: str
) -> list[dict[str, Any]]:
    ids = [p.id for p in periods]
    charts = []
    for key, indicator_ids in TRENDS.items():
        series, targets = {}, {}
        for indicator_id in indicator_ids:
            indicator = defs.get(indicator_id)
            table = results[indicator_id]
            county = table[(table["level"] == "county") & table["period"].isin(ids)]
            series[getattr(indicator, lang)] = suppress_indicator_table(county, k, rate=True)
            targets.update(_target_lines(indicator, lang))
        title = TEXT[lang][f"trend_{key}"]
        first = next(iter(series.values()))
        charts.append({"title": title, "uri": trend_chart(series, title, targets),
                       "q1_gap": first_quarter_gap(first)})
    return charts


def first_quarter_gap(series: pd.DataFrame) -> float | None:
    """How many percentage points first quarters sit below the other quarters on average (None when the
    series has no first quarter, no other quarter, or Q1 is not lower by at least 3 points)."""
    shown = series.dropna(subset=["value"])
    is_q1 = shown["period"].astype(str).str.endswith("Q1")
    if not is_q1.any() or is_q1.all():
        return None
    gap = 100 * (shown.loc[~is_q1, "value"].mean() - shown.loc[is_q1, "value"].mean())
    return float(gap) if gap >= 3 else None


def _tier_section(
    run: Run,
    results: dict[str, pd.DataFrame],
    runs_root: str | Path | None,
    period: Period,
    k: int,
    lang: str,
    chart_lang: str,
) -> dict[str, Any]:
    text = TEXT[lang]
    root = Path(runs_root) if runs_root else run.path.parent
    runs = [r for r in find_runs(root)] if root.is_dir() else []
    if run.path.resolve() not in [r.resolve() for r in runs]:
        runs.append(run.path)
    mix = tier_mix(runs, min_count=k)
    mix_rows = mix.pivot_table(index="as_of", columns="tier", values="share", aggfunc="sum")
    chart_text = TEXT[chart_lang]
    section: dict[str, Any] = {
        "mix_chart": tier_mix_chart(mix, chart_text["mix_title"], {t: chart_text[t] for t in TIERS}),
        "mix_columns": [text[t] for t in TIERS],
        "mix_rows": [
            {"as_of": idx, "shares": [format_value(mix_rows.loc[idx].get(t), True) for t in TIERS]}
            for idx in mix_rows.index
        ],
        "transitions": None,
        "cost": [],
    }
    ordered = [r.resolve() for r in runs]
    position = ordered.index(run.path.resolve())
    if position > 0:
        # Every cell is shown; a cell under k people reads "< k" (no complementary hiding: the table has no
        # totals, and hiding most of it, as before, left a director nothing to read).
        table = tier_transitions(runs[position - 1], run.path)

        def show(value: int) -> str:
            return f"< {k}" if 0 < value < k else f"{value:,}"

        section["transitions"] = {
            "from": runs[position - 1].name.removeprefix("run-"),
            "to": run.path.name.removeprefix("run-"),
            "rows": [(text.get(idx, idx), [show(int(v)) for v in row]) for idx, row in table.iterrows()],
            "columns": [text.get(c, c) for c in table.columns],
        }
    order = {"county": 0, "red": 1, "yellow": 2, "green": 3}
    for indicator_id in COST_BY_TIER:
        indicator = run.definitions.get(indicator_id)
        table = results[indicator_id]
        table = table[(table["period"] == period.id) & table["level"].isin(["county", "tier"])]
        table = suppress_indicator_table(table, k, rate=False)
        table = table.assign(_order=table["unit"].map(order).fillna(9)).sort_values("_order", kind="stable")
        section["cost"].append(
            {
                "title": text["cost_title"].format(name=getattr(indicator, lang), period=period),
                "rows": [
                    {
                        "unit": text.get(r["unit"], r["unit"]),
                        "value": format_value(r["value"], False),
                        "n": "—" if pd.isna(r["persons"]) else f"{r['persons']:,}",
                    }
                    for _, r in table.iterrows()
                ],
            }
        )
    return section
