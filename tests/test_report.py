"""Indicator exports (CSV with BOM, XLSX, HTML), CLI commands, the overview, a headless-browser render."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_indicators import TINY, write_canonical
from typer.testing import CliRunner

from risk.cli import app
from risk.indicators import tier_mix, tier_transitions
from risk.indicators.overview import build_overview
from risk.indicators.report import write_indicator_report

runner = CliRunner()


def _tiers(run_dir: Path, as_of: str, tiers: dict[str, str]) -> None:
    pd.DataFrame({"person_id": list(tiers), "as_of": pd.to_datetime([as_of] * len(tiers)).date,
                  "tier": list(tiers.values())}).to_parquet(run_dir / "tiers.parquet", index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    earlier = write_canonical(root / "2024-09-30", TINY)
    later = write_canonical(root / "2024-12-31", TINY)
    _tiers(earlier, "2024-09-30", {"H1": "red", "H2": "red", "H3": "green", "D1": "yellow"})
    _tiers(later, "2024-12-31", {"H1": "yellow", "H2": "red", "H9": "green", "D1": "yellow"})
    return earlier, later


def test_csv_is_utf8_with_bom_and_suppressed(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = write_indicator_report(runs[1], "bp_control_cn", "2024Q4", tmp_path / "r.csv", by="township")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert list(table.columns)[:4] == ["指标代码", "指标名称", "指标名称（英文）", "口径"]  # Chinese headers
    assert "高血压患者血压控制率（国家基本公卫口径）" in set(table["指标名称"])
    out = write_indicator_report(runs[1], "bp_control_cn", "2024Q4", tmp_path / "r.csv", by="township",
                                 lang="en")
    table = pd.read_csv(out, encoding="utf-8-sig")
    # Default k = 10: T1 (7 patients), T2 (3) and even the county (4 controlled < 10) are hidden.
    assert table["numerator"].isna().all() and set(table["suppressed"]) == {"primary"}
    # k = 4: county 4 controlled / 6 not is shown; T1 (3 controlled) and T2 (3 patients) are hidden.
    out = write_indicator_report(runs[1], "bp_control_cn", "2024Q4", tmp_path / "r4.csv", min_count=4,
                                 lang="en")
    table = pd.read_csv(out, encoding="utf-8-sig").set_index("unit")
    assert (table.loc["county", "numerator"], table.loc["county", "denominator"]) == (4, 10)
    assert table.loc["T1", "suppressed"] == "primary" and table.loc["T2", "suppressed"] == "primary"


def test_min_count_and_over(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = write_indicator_report(runs[1], "bp_control_cn", "2024", tmp_path / "r.csv", by="township",
                                 over="quarter", min_count=1, lang="en")
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert list(table.loc[table["level"] == "county", "period"]) == ["2024Q1", "2024Q2", "2024Q3", "2024Q4"]
    t1 = table[(table["unit"] == "T1") & (table["period"] == "2024Q4")].iloc[0]
    assert (t1["numerator"], t1["denominator"]) == (3, 7)


def test_xlsx_has_data_about_and_indicator_sheets(runs: tuple[Path, Path], tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = write_indicator_report(runs[1], "bp_control_hearts", "2024Q4", tmp_path / "r.xlsx", by="county",
                                 min_count=1)
    sheets = pd.read_excel(out, sheet_name=None)
    assert list(sheets) == ["指标", "本表说明", "指标定义"]
    about = dict(zip(sheets["本表说明"]["项目"], sheets["本表说明"]["内容"], strict=True))
    assert "HEARTS" in about["definition"] and about["indicator_definitions_version"]
    guide = sheets["指标定义"].set_index("指标代码")
    assert {"bp_control_cn", "cost_per_patient", "signing_rate"} <= set(guide.index)
    assert guide.loc["cost_per_patient", "数值单位"] == "元 / 人"
    sheet = load_workbook(out)["指标"]
    headers = [c.value for c in sheet[1]]
    assert headers[:2] == ["指标代码", "指标名称"]
    assert [c.value for c in sheet[2]][:2] == ["indicator_id", "name_zh"]  # machine names second
    value = sheet.cell(3, headers.index("数值") + 1)
    assert isinstance(value.value, float) and 0 <= value.value <= 1 and value.number_format == "0.0%"
    assert sheet.cell(3, headers.index("分母（人）") + 1).number_format == "#,##0"
    # money is a number with a thousands format, not a string
    out = write_indicator_report(runs[1], "cost_per_patient", "2024Q4", tmp_path / "c.xlsx", by="county",
                                 min_count=1, lang="en")
    sheet = load_workbook(out)["indicator"]
    headers = [c.value for c in sheet[1]]
    cost = sheet.cell(2, headers.index("value") + 1)
    assert isinstance(cost.value, float) and cost.number_format == "#,##0.00"


def test_html_report_names_its_definition(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = write_indicator_report(runs[1], "bp_control_cn", "2024Q4", tmp_path / "r.html", by="township",
                                 min_count=1)
    html = out.read_text(encoding="utf-8")
    assert "Chinese national basic public health service definition" in html
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html


def test_cli_report_and_clean_errors(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["report", "signing_rate", "--run", str(runs[1]), "--period", "2024Q4",
                                 "--by", "team", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    for args, message in (
        (["report", "nope", "--run", str(runs[1]), "--period", "2024Q4", "--out", str(out)],
         "unknown indicator"),
        (["report", "signing_rate", "--run", str(runs[1]), "--period", "2024Q9", "--out", str(out)],
         "not a period"),
        (["report", "signing_rate", "--run", str(runs[1]), "--period", "2024", "--by", "street", "--out",
          str(out)], "unknown breakdown"),
        (["report", "signing_rate", "--run", str(tmp_path), "--period", "2024", "--out", str(out)],
         "not a run folder"),
        (["report", "signing_rate", "--run", str(runs[1]), "--period", "2024", "--out",
          str(tmp_path / "r.pdf")], "unknown report format"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_tier_mix_and_transitions(runs: tuple[Path, Path], tmp_path: Path) -> None:
    mix = tier_mix(list(runs)).set_index(["as_of", "tier"])
    assert mix.loc[("2024-09-30", "red"), "persons"] == 2
    assert mix.loc[("2024-12-31", "red"), "share"] == pytest.approx(0.25)
    table = tier_transitions(*runs)
    # H1 red -> yellow, H2 red -> red, H3 green -> left, D1 yellow -> yellow, H9 new -> green.
    assert table.loc["red", "yellow"] == 1 and table.loc["red", "red"] == 1
    assert table.loc["green", "left"] == 1 and table.loc["new", "green"] == 1
    assert tier_transitions(*runs, min_count=10).isna().to_numpy().sum() == 5  # every non-zero cell is small
    result = runner.invoke(app, ["report", "tier_transitions", "--run", str(runs[1]), "--previous",
                                 str(runs[0]), "--out", str(tmp_path / "t.csv"), "--min-count", "1"])
    assert result.exit_code == 0, result.output


def test_overview_is_self_contained(runs: tuple[Path, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["overview", "--run", str(runs[1]), "--period", "2024Q4", "--out",
                                 str(tmp_path / "o.html"), "--min-count", "2"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "o.html").read_text(encoding="utf-8")
    for text in ("乡镇排名", "分级变化 2024-09-30 → 2024-12-31", "WHO HEARTS", "@media print", "≥ 60%"):
        assert text in html
    assert "Township league table" not in html  # Chinese only by default
    result = runner.invoke(app, ["overview", "--run", str(runs[1]), "--period", "2024Q4", "--out",
                                 str(tmp_path / "en.html"), "--min-count", "2", "--lang", "en"])
    assert result.exit_code == 0, result.output
    english = (tmp_path / "en.html").read_text(encoding="utf-8")
    assert "Township league table" in english and "乡镇排名" not in english
    assert html.count("data:image/png;base64,") >= 3
    assert "<script" not in html and "src=\"http" not in html


@pytest.fixture(scope="module")
def named_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny runs with township names in persons (optional contract column township_name)."""
    names = {"T1": "东岭镇", "T2": "南湖镇"}
    tables = {**TINY, "persons": [{**row, "township_name": names.get(row["township_id"])}
                                  for row in TINY["persons"]]}
    root = tmp_path_factory.mktemp("named")
    earlier = write_canonical(root / "run-2024-09-30", tables)
    later = write_canonical(root / "run-2024-12-31", tables)
    _tiers(earlier, "2024-09-30", {"H1": "red", "H2": "red", "H3": "green", "D1": "yellow"})
    _tiers(later, "2024-12-31", {"H1": "yellow", "H2": "red", "H9": "green", "D1": "yellow"})
    return earlier, later


def test_overview_is_a_directors_page(named_runs: tuple[Path, Path], tmp_path: Path) -> None:
    page = build_overview(named_runs[1], tmp_path / "o.html", period="2024Q4", min_count=2)
    html = page.read_text(encoding="utf-8")
    assert "东岭镇" in html and "南湖镇" in html and ">T1<" not in html  # names, not ids
    # no developer references or raw ids anywhere on the page
    for text in ("issue ", ".md", ".yaml", ".parquet", "chinese_national", "who_hearts", "--by", "RUN_DIR"):
        assert text not in html, text
    # the transition table is complete: every one of the 4 x 4 cells has a number or "< k"
    table = html.split("分级变化")[1].split("</table>")[0]
    cells = [c.split("<")[0] for c in table.split("<td>")[1:]]
    assert len(cells) == 16 and "—" not in cells
    # the five transitions of one person each read "< 2" (not a dash, not the exact count); zeros stay 0
    assert cells.count("&lt; 2") == 5 and set(cells) == {"&lt; 2", "0"}
    # section 5 says how each indicator is computed in Chinese on the Chinese page
    methods = html.split("5. 指标定义与来源")[1]
    assert "期内最近一次血压（家庭自测以外的任一来源）低于 140/90 mmHg" in methods
    assert "Latest BP" not in methods and "Denominator" not in methods
    assert "国家基本公共卫生服务规范（第三版，2017）" in methods and "3rd ed." not in methods


def test_overview_draws_both_targets_and_explains_the_first_quarter() -> None:
    from risk.indicators.definitions import indicator_set
    from risk.indicators.overview import _target_lines, first_quarter_gap, public_text

    lines = _target_lines(indicator_set().get("bp_control_cn"), "zh")
    assert lines == {"2023 年目标 ≥ 60%": 0.6, "2025 年目标 ≥ 80%": 0.8}
    series = pd.DataFrame({"period": ["2023Q1", "2023Q2", "2023Q3", "2023Q4", "2024Q1", "2024Q2"],
                           "value": [0.31, 0.50, 0.47, 0.45, 0.32, 0.49]})
    assert first_quarter_gap(series) == pytest.approx(16.25)
    assert first_quarter_gap(series.assign(value=0.5)) is None
    assert public_text("国家基本公共卫生服务规范 (3rd ed., 2017); variant requested in issue 6") == (
        "国家基本公共卫生服务规范 (3rd ed., 2017)")
    assert public_text("WHO HEARTS package (domain-reference.md section 2)") == "WHO HEARTS package"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.browser
def test_overview_renders_in_headless_browser(runs: tuple[Path, Path], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("RISK_REQUIRE_BROWSER") == "1":
            pytest.fail("RISK_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("chromium not installed")
    page = build_overview(runs[1], tmp_path / "o.html", period="2024Q4", min_count=2)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
        tab = instance.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto(page.resolve().as_uri())
        # Every chart image decoded (naturalWidth > 0) and the league table laid out.
        widths = tab.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) >= 3 and all(w > 0 for w in widths)
        assert tab.locator("h2").count() == 6  # 5 sections + capitation (小包干)
        pdf = tab.pdf(format="A4")  # printable
        instance.close()
    assert not errors
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    subprocess.run([browser, "--version"], check=True, capture_output=True)
