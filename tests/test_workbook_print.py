"""The printed team workbook as paper: rendered to PDF by LibreOffice headless, read back with poppler.

Checks what a village doctor would see: A4 pages, 10 pt text not shrunk to fit, every patient row with its
full reason, the page header (team, village, print and run date) and the legend.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from risk.products.workbook import PrintRow, PrintSettings, write_team_workbook

pytestmark = pytest.mark.slow

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
LEGEND = {"red": "红色：2周内随访/转诊", "yellow": "黄色：每月随访", "green": "绿色：常规季度随访"}
LONG_REASON = (
    "两次随访血压均未控制（≥140/90 mmHg），按规范转诊上级医院；最近一次血压 168/102，"
    "已超过应随访日期 45 天；合并 2 型糖尿病，空腹血糖 9.4 mmol/L 未达标"
)


def _need_tools() -> None:
    missing = [tool for tool in ("pdftotext", "pdfinfo") if shutil.which(tool) is None]
    if SOFFICE is None:
        missing.append("soffice")
    if missing:
        if os.environ.get("RISK_REQUIRE_BROWSER"):
            pytest.fail(f"{', '.join(missing)} not installed (bash .ci/services.sh installs them)")
        pytest.skip(f"{', '.join(missing)} not installed")


def _rows() -> list[PrintRow]:
    rows = []
    for i in range(68):  # the team that printed on one unreadable page before
        village = "东村" if i < 40 else "西村"
        tier = ("red", "yellow", "green")[i % 3]
        reason = LONG_REASON if i % 3 == 0 else f"第{i}号原因：随访逾期，请电话联系"
        rows.append(
            PrintRow(
                name=f"患者{i:02d}",
                village=village,
                phone=f"1380000{i:04d}",
                tier=tier,
                reasons=reason,
                bp="152/96",
                bp_date="2024-11-03",
                fpg="8.1" if i % 2 else "",
                fpg_date="2024-10-02" if i % 2 else "",
                due_on="2024-12-01",
                days_overdue=30 if i % 4 == 0 else 0,
            )
        )
    return rows


def _render(tmp_path: Path, settings: PrintSettings) -> tuple[Path, list[PrintRow]]:
    rows = _rows()
    book = tmp_path / "TM001.xlsx"
    write_team_workbook(rows, book, settings)
    profile = tmp_path / "lo-profile"
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(book),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return tmp_path / "TM001.pdf", rows


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    return text.split("\f")[:-1]


def _words(pdf: Path) -> list[tuple[int, float, float, float, str]]:
    """(page, xMin, yMin, height, word) of every word poppler finds."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    words = []
    for page, chunk in enumerate(html.split("<page ")[1:]):
        for x1, y1, y2, word in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>', chunk
        ):
            words.append((page, float(x1), float(y1), float(y2) - float(y1), word))
    return words


def _column_text(words, left_header: str, right_header: str) -> str:
    """The text printed in one column (between two headers), read top to bottom page by page."""
    left = min(x for _, x, _, _, w in words if w.startswith(left_header))
    right = min(x for _, x, _, _, w in words if w.startswith(right_header))
    inside = sorted((p, round(y), x, w) for p, x, y, _, w in words if left - 1 <= x < right - 1)
    return "".join(w for *_, w in inside)


def test_team_workbook_prints_readably_on_a4(tmp_path):
    _need_tools()
    pdf, rows = _render(
        tmp_path, PrintSettings(team="TM001", run_date="2024-12-31", print_date="2025-01-06", legend=LEGEND)
    )
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"Page size:\s+(841\.[89]\d* x 595\.\d+|595\.\d+ x 841\.[89]\d*) pts", info), info
    pages = _page_texts(pdf)
    # 68 patients with wrapped reasons: several readable pages, two villages -> at least one page each,
    # and no page crammed with more than ~25 patients
    assert 4 <= len(pages) <= 12
    for page in pages:
        assert "TM001" in page and "2025-01-06" in page and "2024-12-31" in page
        assert ("东村" in page) or ("西村" in page)
        assert len(re.findall(r"1380000\d{4}", page)) <= 25
    everything = _squash("".join(pages))
    for row in rows:
        assert row.phone in everything and row.name in everything
    words = _words(pdf)
    reasons = _column_text(words, "主要原因", "最近血压")
    assert reasons.count(_squash(LONG_REASON)) == sum(1 for r in rows if r.reasons == LONG_REASON)
    for text in LEGEND.values():
        assert _squash(text) in everything
    # continuous numbering on each village sheet: 1..40 then 1..28
    numbers = [int(m) for m in re.findall(r"^\s*(\d{1,2})\s+患者", "\n".join(pages), flags=re.M)]
    assert numbers == list(range(1, 41)) + list(range(1, 29))
    # text is not shrunk to fit: body words are at least 9 pt tall (a 10 pt font's glyph box)
    heights = sorted(h for *_, h, _ in words)
    assert heights[len(heights) // 10] >= 9.0
    assert "red" not in everything.lower()  # Chinese only by default


def test_team_workbook_in_english(tmp_path):
    _need_tools()
    legend = {
        "red": "Red: follow up or refer within 2 weeks",
        "yellow": "Yellow: follow up monthly",
        "green": "Green: routine quarterly follow-up",
    }
    pdf, _ = _render(
        tmp_path,
        PrintSettings(team="TM001", run_date="2024-12-31", print_date="2025-01-06", lang="en", legend=legend),
    )
    everything = _squash("".join(_page_texts(pdf)))
    assert "Call/visitnotes" in everything and "30daysoverdue" in everything
    assert "Dataasof2024-12-31" in everything
    assert "随访记录" not in everything


def test_display_width_is_the_sum_of_each_characters_width_in_order():
    """Looked up per distinct character, the width is the same float as adding 1.8 per CJK or full-width
    character and 0.9 per other character one by one (the row heights, and so the workbooks, unchanged)."""
    import unicodedata

    from risk.products.workbook import display_width

    def one_by_one(text: str) -> float:
        return sum(1.8 if unicodedata.east_asian_width(ch) in "WF" else 0.9 for ch in text)

    texts = ["", "13800000000", "张三", "血压 150/95  2024-06-30", "ＡＢＣ full-width", "é\u0301 ≥ 7.0；高危"]
    texts += ["9" * n + "高" * m for n in range(0, 40, 7) for m in range(0, 30, 11)]
    for text in texts:
        assert display_width(text) == one_by_one(text), text
