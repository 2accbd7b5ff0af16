"""The printed team workbook: what a village doctor holds in the hand, one A4 sheet per village.

Ten columns at 10 pt on landscape A4 without shrinking: number, name, village, phone, colour, the reasons in
full (wrapped), last BP / FPG with their dates, due date / days overdue, a blank notes column and a tick box.
Each page carries the team, the village, the print date and the date the data run was for; a legend at the
top of every sheet says what each colour and the due date ask of the doctor. Numbers run 1, 2, 3... on each
village sheet. Chinese by default, English with `lang="en"`. Every cell is written as a string or number,
never as a formula. The CSV files keep every field for machines (see risk.products.lists).
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import NamedTuple

from risk.spreadsheet import XLSXWRITER_OPTIONS, collector_paused, inert_text, string_writer

FONT_PT = 10
LINE_PT = 13.5  # row height per line of 10 pt text
TIER_FILL = {"red": "#F8CBAD", "yellow": "#FFE699", "green": "#C6EFCE"}
TIER_NAME = {
    "zh": {"red": "红", "yellow": "黄", "green": "绿"},
    "en": {"red": "Red", "yellow": "Yellow", "green": "Green"},
}

# (key, zh header, en header, width in Excel character units); the widths sum to what fits on landscape A4
# at the margins below without scaling (~108 units as LibreOffice renders the default font; Excel's units are
# narrower, so the page has room to spare there).
PRINT_COLUMNS = [
    ("number", "序号", "No.", 3.5),
    ("name", "姓名", "Name", 7),
    ("village", "村", "Village", 6),
    ("phone", "电话", "Phone", 10.5),
    ("tier", "分级", "Colour", 6),
    ("reasons", "主要原因", "Reasons", 23),
    ("last", "最近血压 / 血糖", "Last BP / FPG", 19.5),
    ("due", "应随访 / 逾期", "Due / overdue", 11),
    ("notes", "电话、随访记录", "Call / visit notes", 15),
    ("done", "完成", "Done", 4),
]
MIN_LINES = 2  # room to write a note by hand on every row

TEXT = {
    "zh": {
        "title": "随访优先名单",
        "team": "团队",
        "village": "村",
        "printed": "打印日期",
        "run": "数据截至",
        "page": "第 &P / &N 页",
        "bp": "血压",
        "fpg": "血糖",
        "overdue": "逾期 {days} 天",
        "due_now": "今日应随访",
        "not_due": "",
        "legend_title": "说明",
        "due_note": "应随访日期 = 上次随访日期 + 该颜色的随访间隔（从未随访者为数据截至日）；"
        "“逾期 N 天”表示已过应随访日期 N 天，请尽快联系。名单按优先顺序排列，从第 1 位开始。",
        "notes_note": "在“电话、随访记录”一栏写下联系或随访情况，完成后在“完成”一栏打勾。",
    },
    "en": {
        "title": "Follow-up priority list",
        "team": "Team",
        "village": "Village",
        "printed": "Printed",
        "run": "Data as of",
        "page": "Page &P of &N",
        "bp": "BP",
        "fpg": "FPG",
        "overdue": "{days} days overdue",
        "due_now": "due today",
        "not_due": "",
        "legend_title": "Key",
        "due_note": "Due date = last follow-up + the colour's follow-up interval (the data date if never "
        "followed up); 'N days overdue' means the due date passed N days ago: contact soon. "
        "Patients are in priority order, start at number 1.",
        "notes_note": "Write what happened on the call or visit under notes; tick 'Done' when finished.",
    },
}


@dataclass
class PrintSettings:
    """What the page header and legend need besides the rows."""

    team: str
    run_date: str
    lang: str = "zh"
    print_date: str = field(default_factory=lambda: date.today().isoformat())
    legend: dict[str, str] = field(default_factory=dict)  # tier -> what the colour asks (rule set text)
    village_names: dict[str, str] = field(default_factory=dict)  # village id -> name printed (else the id)

    def village(self, village_id: str) -> str:
        return self.village_names.get(village_id) or village_id


class PrintRow(NamedTuple):
    """One patient as printed; built from a priority-list row (risk.products.lists.print_rows). A named
    tuple: the rows of every team go to the list workers, and tuples pickle faster than objects."""

    name: str
    village: str
    phone: str
    tier: str
    reasons: str
    bp: str
    bp_date: str
    fpg: str
    fpg_date: str
    due_on: str
    days_overdue: int


class _CharWidths(dict):
    """Width units per character, looked up once per distinct character (east_asian_width per character
    of every printed cell was a tenth of the list workers' time)."""

    def __missing__(self, ch: str) -> float:
        width = 1.8 if unicodedata.east_asian_width(ch) in "WF" else 0.9
        self[ch] = width
        return width


_CHAR_WIDTHS = _CharWidths()


def display_width(text: str) -> float:
    """Width units a 10 pt string takes in a cell: a CJK or full-width character 1.8 (as Excel draws it;
    LibreOffice draws it narrower), other characters 0.9. Overestimating leaves white space; under-
    estimating would hide text behind a fixed row height. (Summed in the text's order, so the float is
    the same as adding the characters' widths one by one.)"""
    return sum(map(_CHAR_WIDTHS.__getitem__, text))


@functools.lru_cache(maxsize=1 << 16)
def wrapped_lines(text: str, width: float) -> int:
    """Lines `text` takes when wrapped in a column `width` units wide (less the cell padding). Cached: the
    row heights of the printed lists measured every character of every cell, and most cells repeat
    (reasons, colours, villages, dates)."""
    usable = max(1.0, width - 1.0)
    return sum(max(1, math.ceil(display_width(part) / usable)) for part in text.split("\n"))


def _cells(row: PrintRow, number: int, lang: str, village: str) -> list[str | int]:
    text = TEXT[lang]
    last = []
    if row.bp:
        last.append(f"{text['bp']} {row.bp}  {row.bp_date}")
    if row.fpg:
        last.append(f"{text['fpg']} {row.fpg}  {row.fpg_date}")
    due = row.due_on
    if row.days_overdue > 0:
        due += "\n" + text["overdue"].format(days=row.days_overdue)
    return [
        number,
        row.name,
        village,
        row.phone,
        TIER_NAME[lang].get(row.tier, row.tier),
        row.reasons,
        "\n".join(last),
        due,
        "",
        "☐",
    ]


@collector_paused()
def write_team_workbook(rows: Sequence[PrintRow], path: Path, settings: PrintSettings) -> None:
    """One sheet per village (villages sorted by ID); sheet names from risk.products.lists.sheet_names
    (unique case-insensitively, at most 31 characters, never Excel's reserved "History")."""
    import xlsxwriter

    from risk.products.lists import sheet_names  # lists imports this module; import at call time

    lang = settings.lang if settings.lang in TEXT else "zh"
    text = TEXT[lang]
    header_idx = 1 if lang == "zh" else 2
    book = xlsxwriter.Workbook(
        str(path),
        {"in_memory": True, **XLSXWRITER_OPTIONS},  # every str a text cell, never a formula
    )
    try:
        base = {"font_size": FONT_PT, "text_wrap": True, "valign": "top", "border": 1}
        cell_fmt = book.add_format(base)
        centre_fmt = book.add_format({**base, "align": "center"})
        header_fmt = book.add_format({**base, "bold": True, "bg_color": "#D9E1F2"})
        title_fmt = book.add_format({"font_size": 12, "bold": True})
        legend_fmt = book.add_format({"font_size": FONT_PT, "text_wrap": True, "valign": "top"})
        tier_fmt = {
            tier: book.add_format({**base, "bold": True, "align": "center", "bg_color": colour})
            for tier, colour in TIER_FILL.items()
        }
        legend_tier_fmt = {
            tier: book.add_format(
                {
                    "font_size": FONT_PT,
                    "bold": True,
                    "align": "center",
                    "valign": "top",
                    "border": 1,
                    "bg_color": colour,
                }
            )
            for tier, colour in TIER_FILL.items()
        }
        by_village: dict[str, list[PrintRow]] = {}
        for row in rows:
            by_village.setdefault(row.village, []).append(row)
        widths = [width for *_, width in PRINT_COLUMNS]
        # per column of a patient row: the colour column's is the row's tier; the tick box is centred
        formats = [centre_fmt] + [cell_fmt] * (len(PRINT_COLUMNS) - 2) + [centre_fmt]
        legend_width = sum(widths[1:])
        sheets = sheet_names(sorted(by_village))
        for village in sorted(by_village):
            sheet = book.add_worksheet(sheets[village])
            sheet.set_default_row(LINE_PT)
            for idx, width in enumerate(widths):
                sheet.set_column(idx, idx, width)
            shown = inert_text(settings.village(village))  # a name from the data: never a formula
            heading = f"{text['title']} · {text['team']} {settings.team} · {text['village']} {shown}"
            sheet.write_string(0, 0, heading, title_fmt)
            line = 1
            for tier in ("red", "yellow", "green"):
                if tier not in settings.legend:
                    continue
                sheet.write_string(line, 0, TIER_NAME[lang][tier], legend_tier_fmt[tier])
                sheet.merge_range(line, 1, line, len(widths) - 1, settings.legend[tier], legend_fmt)
                line += 1
            for note in (text["due_note"], text["notes_note"]):
                sheet.merge_range(line, 0, line, len(widths) - 1, note, legend_fmt)
                sheet.set_row(line, LINE_PT * wrapped_lines(note, legend_width) + 2)
                line += 1
            header_row = line + 1
            for idx, column in enumerate(PRINT_COLUMNS):
                sheet.write_string(header_row, idx, column[header_idx], header_fmt)
            sheet.set_row(
                header_row, LINE_PT * max(wrapped_lines(c[header_idx], c[3]) for c in PRINT_COLUMNS) + 2
            )
            write_string = string_writer(sheet)
            for number, row in enumerate(by_village[village], start=1):
                values = _cells(row, number, lang, shown)
                r = header_row + number
                sheet.write_number(r, 0, number, centre_fmt)  # the number; then text cells only
                formats[4] = tier_fmt.get(row.tier, centre_fmt)
                lines = MIN_LINES
                for idx in range(1, len(values)):
                    write_string(r, idx, values[idx], formats[idx])
                    lines = max(lines, wrapped_lines(values[idx], widths[idx]))
                sheet.set_row(r, LINE_PT * lines + 2)
            sheet.set_landscape()
            sheet.set_paper(9)  # A4
            sheet.set_margins(left=0.3, right=0.3, top=0.7, bottom=0.6)
            sheet.repeat_rows(header_row)
            sheet.print_area(0, 0, header_row + len(by_village[village]), len(widths) - 1)
            sheet.set_print_scale(100)
            sheet.set_header(
                f"&L&10{text['team']} {_escape(settings.team)} · {text['village']} {_escape(shown)}"
                f"&R&10{text['printed']} {settings.print_date} · {text['run']} {settings.run_date}",
                {"margin": 0.3},
            )
            sheet.set_footer(f"&C&10{text['page']}", {"margin": 0.3})
    finally:
        book.close()


def _escape(value: str) -> str:
    """An ampersand in a header is a control code in Excel's header syntax."""
    return str(value).replace("&", "&&")
