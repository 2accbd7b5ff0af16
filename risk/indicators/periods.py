"""Reporting periods: a year (`2024`), a quarter (`2024Q4`) or a month (`2024-11`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from risk.errors import RiskUserError

Grain = Literal["year", "quarter", "month"]
GRAINS: tuple[Grain, ...] = ("year", "quarter", "month")

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-?(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date
    grain: Grain
    id: str

    def __str__(self) -> str:
        return self.id


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def year_period(year: int) -> Period:
    return Period(date(year, 1, 1), date(year, 12, 31), "year", f"{year}")


def quarter_period(year: int, quarter: int) -> Period:
    first_month = 3 * (quarter - 1) + 1
    return Period(
        date(year, first_month, 1), _month_end(year, first_month + 2), "quarter", f"{year}Q{quarter}"
    )


def month_period(year: int, month: int) -> Period:
    return Period(date(year, month, 1), _month_end(year, month), "month", f"{year}-{month:02d}")


def parse_period(text: str) -> Period:
    """`2024` -> the year, `2024Q4` -> the quarter, `2024-11` or `202411` -> the month."""
    text = str(text).strip()
    if match := _YEAR.match(text):
        return year_period(int(match[1]))
    if match := _QUARTER.match(text):
        return quarter_period(int(match[1]), int(match[2]))
    if match := _MONTH.match(text):
        return month_period(int(match[1]), int(match[2]))
    raise RiskUserError(
        f"'{text}' is not a period; use a year (2024), a quarter (2024Q4) or a month (2024-11)"
    )


def period_containing(day: date, grain: Grain) -> Period:
    if grain == "year":
        return year_period(day.year)
    if grain == "quarter":
        return quarter_period(day.year, (day.month - 1) // 3 + 1)
    if grain == "month":
        return month_period(day.year, day.month)
    raise RiskUserError(f"unknown period grain '{grain}'; use one of {', '.join(GRAINS)}")


def periods_between(first: date, last: date, grain: Grain) -> list[Period]:
    """Consecutive periods of `grain` from the one containing `first` to the one containing `last`."""
    periods = []
    current = period_containing(first, grain)
    while current.start <= last:
        periods.append(current)
        current = period_containing(current.end + timedelta(days=1), grain)
    return periods


def split_period(period: Period, grain: Grain) -> list[Period]:
    """The sub-periods of `grain` making up `period` (a year into quarters or months, ...)."""
    if GRAINS.index(grain) < GRAINS.index(period.grain):
        raise RiskUserError(f"cannot split {period.grain} {period} into {grain}s")
    return periods_between(period.start, period.end, grain)


def trailing_periods(last: Period, count: int) -> list[Period]:
    """`count` consecutive periods of the same grain ending with `last` (for trend charts)."""
    periods = [last]
    while len(periods) < count:
        periods.insert(0, period_containing(periods[0].start - timedelta(days=1), last.grain))
    return periods
