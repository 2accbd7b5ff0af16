"""Follow-up priority lists for family-doctor teams, villages and health-management units.

Order: the one priority order computed with the tiers (risk/tiers/priority.py: urgency, colour, days
overdue, risk score, person_id), the same as the web team list and the API. Tiers without a priority
column (older runs) fall back to tier, risk, days overdue, person_id.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from risk.products.workbook import PrintRow, PrintSettings, write_team_workbook
from risk.schema import TIER_RANK
from risk.spreadsheet import inert_frame, inert_table, inert_text

TIER_ZH = {"red": "红", "yellow": "黄", "green": "绿"}

# The persons columns the lists show (read from the run's canonical persons table).
UNMANAGED_CSV = "unmanaged_key_population.csv"  # in lists/
LIST_PERSON_COLUMNS = [
    "person_id",
    "name",
    "phone",
    "national_id_masked",
    "township_id",
    "village_id",
    "unit_id",
    "team_id",
]
LIST_COLUMNS = {
    # column -> (中文表头, English header)
    "team_id": ("团队", "Team"),
    "township_id": ("乡镇", "Township"),
    "unit_id": ("健康管理单元", "Unit"),
    "village_id": ("村", "Village"),
    "rank": ("序号", "Rank"),
    "person_id": ("档案号", "Person ID"),
    "name": ("姓名", "Name"),
    "national_id_masked": ("身份证号", "National ID (masked)"),
    "phone": ("电话", "Phone"),
    "age": ("年龄", "Age"),
    "sex": ("性别", "Sex"),
    "conditions": ("病种", "Conditions"),
    "tier": ("分级", "Tier"),
    "tier_rules": ("规则分级", "Rule tier"),
    "tier_model": ("模型分级", "Model tier"),
    "risk": ("风险分", "Risk"),
    "top_reasons": ("主要原因", "Top reasons"),
    "top_reasons_en": ("主要原因(英)", "Top reasons (en)"),
    "last_bp": ("最近血压", "Last BP"),
    "last_bp_date": ("血压日期", "BP date"),
    "last_fpg": ("最近空腹血糖", "Last FPG"),
    "last_fpg_date": ("血糖日期", "FPG date"),
    "last_follow_up": ("最近随访", "Last follow-up"),
    "next_due_on": ("下次随访", "Next due"),
    "days_overdue": ("逾期天数", "Days overdue"),
}


def _top_reasons(reasons_json: str | None, language: str, limit: int = 3) -> str:
    if not reasons_json:
        return ""
    reasons = json.loads(reasons_json)
    reasons.sort(key=lambda r: -TIER_RANK.get(r.get("tier", "green"), 0))
    sep = "；" if language == "zh" else "; "
    return sep.join(r.get(language, r.get("id", "")) for r in reasons[:limit])


def _per_distinct(values: pd.Series, function: Callable[[str | None], str]) -> pd.Series:
    """function applied once per distinct value: a county has ~1,500 distinct reason lists for 100k+
    patients, and parsing each patient's JSON took over a second at 1M persons."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return pd.Series(np.array([function(v) for v in distinct], dtype=object)[codes], index=values.index)


def _fmt_date(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.strftime("%Y-%m-%d").fillna("")


def build_priority_list(tiers: pd.DataFrame, features: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """One row per tiered person with everything a village doctor needs on paper."""
    people = (
        persons[["person_id", "name", "phone", "national_id_masked"]]
        if "name" in persons
        else (persons.assign(name="")[["person_id", "name", "phone", "national_id_masked"]])
    )
    frame = tiers.merge(features, on=["person_id"], how="left", suffixes=("", "_f")).merge(
        people, on="person_id", how="left"
    )
    risk = frame.get("model_probability")
    if risk is None or risk.isna().all():
        risk = frame["rule_score"]
    out = pd.DataFrame(
        {
            "team_id": frame["team_id"],
            "township_id": frame["township_id"],
            "unit_id": frame["unit_id"],
            "village_id": frame["village_id"],
            "person_id": frame["person_id"],
            "name": frame["name"].fillna(""),
            "national_id_masked": frame["national_id_masked"].fillna(""),
            "phone": frame["phone"].fillna(""),
            "age": frame["age"].round(0).astype("Int64"),
            "sex": frame["sex"],
            "conditions": (
                frame["has_hypertension"].map({True: "高血压", False: ""}).fillna("")
                + frame["has_diabetes_t2"].map({True: " 糖尿病", False: ""}).fillna("")
            ).str.strip(),
            "tier": frame["tier"],
            "tier_rules": frame["tier_rules"],
            "tier_model": frame.get("tier_model"),
            "risk": risk.astype(float).round(4),
            "top_reasons": _per_distinct(frame["reasons"], lambda r: _top_reasons(r, "zh")),
            "top_reasons_en": _per_distinct(frame["reasons"], lambda r: _top_reasons(r, "en")),
            "last_bp": (
                frame["bp_last_sbp"].round(0).astype("Int64").astype(str)
                + "/"
                + frame["bp_last_dbp"].round(0).astype("Int64").astype(str)
            ).where(frame["bp_last_sbp"].notna(), ""),
            "last_bp_date": _fmt_date(frame["bp_last_date"]),
            "last_fpg": frame["fpg_last"].round(1).astype(str).where(frame["fpg_last"].notna(), ""),
            "last_fpg_date": _fmt_date(frame["fpg_last_date"]),
            "last_follow_up": _fmt_date(frame["fu_last_date"]),
            "next_due_on": _fmt_date(frame["next_due_on"]),
            "days_overdue": frame["days_overdue"].fillna(0).astype(int),
        }
    )
    if "priority" in frame.columns and frame["priority"].notna().all():
        out["_priority"] = frame["priority"].to_numpy()
        out = out.sort_values(["team_id", "_priority"], kind="mergesort").drop(columns="_priority")
    else:
        out["_tier_rank"] = out["tier"].map(TIER_RANK)
        out = out.sort_values(
            ["team_id", "_tier_rank", "risk", "days_overdue", "person_id"],
            ascending=[True, False, False, False, True],
            kind="mergesort",
        ).drop(columns="_tier_rank")
    out.insert(4, "rank", out.groupby("team_id").cumcount() + 1)
    return out.reset_index(drop=True)


@dataclass
class ListExport:
    csv_files: int
    xlsx_files: int
    rows: int


SLUG_CHARS = 40  # of the ID kept in a file name (CJK letters are 3 bytes; file names stop at 255 bytes)
SHEET_CHARS = 31  # Excel's limit for a sheet name


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))


def _short_hash(name: str) -> str:
    return hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def file_stem(raw_id: str) -> str:
    """File name (without suffix) for a team / village / unit ID: a readable slug plus a short hash of the
    raw ID, so IDs that slug alike (`TM/X`, `TM_X`, or `TM1` / `tm1` on a case-insensitive disk) never
    share a file."""
    return f"{_safe(raw_id)[:SLUG_CHARS]}-{_short_hash(raw_id)}"


def sheet_names(villages: list[str]) -> dict[str, str]:
    """Distinct Excel sheet names (case-insensitive, at most 31 characters) for the villages of one
    workbook: the slug when it is the ID itself and unique, else a shortened slug plus a hash."""
    plain = {v: _safe(v) for v in villages}
    seen: dict[str, int] = {}
    for name in plain.values():
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    names: dict[str, str] = {}
    taken: set[str] = set()
    for village in villages:
        name = plain[village]
        if (
            name != str(village)
            or len(name) > SHEET_CHARS
            or seen[name.lower()] > 1
            or name.lower() == "history"
        ):  # "History" is reserved by Excel
            name = f"{name[: SHEET_CHARS - 9]}-{_short_hash(village)}"
        counter = 1
        base = name
        while name.lower() in taken:  # only if two hashes met: still unique
            counter += 1
            name = f"{base[: SHEET_CHARS - len(str(counter)) - 1]}~{counter}"
        taken.add(name.lower())
        names[village] = name
    return names


def write_csv(table: pa.Table | pd.DataFrame, path: Path, *, already_inert: bool = False) -> None:
    """UTF-8 CSV with a byte-order mark (so Excel shows Chinese correctly), written by Arrow: pandas'
    to_csv took 6 s of the 1M-person lists stage. Text values are always quoted, numbers never.
    `already_inert`: the table's text values went through inert_table already (a slice of a table made inert
    once), so only the header is checked here."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if already_inert:
        table = table.rename_columns([inert_text(name) for name in table.column_names])
    else:
        table = inert_table(table)  # no cell a spreadsheet would run as a formula
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and _all_midnight(table.column(index)):
            table = table.set_column(index, field.name, table.column(index).cast(pa.date32()))
    with open(path, "wb") as handle:
        handle.write(codecs.BOM_UTF8)
        pa_csv.write_csv(table, handle)


def _all_midnight(column: pa.ChunkedArray) -> bool:
    """Dates held as timestamps are written as dates (2024-06-30, not 2024-06-30 00:00:00.000000)."""
    values = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    unit = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[column.type.unit]
    known = values[~column.is_null().to_numpy(zero_copy_only=False)]
    return bool((known % unit == 0).all())


def _write_csv_groups(table: pa.Table, keys: np.ndarray, ranks: np.ndarray, folder: Path) -> int:
    """One file per key, rows by rank; equal ranks keep the table's order (np.lexsort is stable). The
    table's text values are inert already (inert_table): escaping each file again cost a scan per file."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((ranks, keys))
    sorted_keys = keys[order]
    runs = _runs(sorted_keys)
    ordered = table.take(order)  # one gather for every file; each file is then a zero-copy slice
    for start, stop in runs:
        write_csv(
            ordered.slice(start, stop - start),
            folder / f"{file_stem(sorted_keys[start])}.csv",
            already_inert=True,
        )
    return len(runs)


def _runs(sorted_keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal keys in a sorted array; none for an empty array."""
    if len(sorted_keys) == 0:
        return []
    bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def team_csv_table(table: pa.Table) -> pa.Table:
    """The per-team CSV as people open it: every field, headed in Chinese (LIST_COLUMNS; the column layout
    is documented in docs/lists.md). The county-wide, village and unit CSVs keep the machine names."""
    return table.rename_columns([LIST_COLUMNS.get(name, (name,))[0] for name in table.column_names])


PRINT_SOURCE_COLUMNS = [
    "team_id",
    "name",
    "village_id",
    "phone",
    "tier",
    "top_reasons",
    "top_reasons_en",
    "last_bp",
    "last_bp_date",
    "last_fpg",
    "last_fpg_date",
    "next_due_on",
    "days_overdue",
]


def print_rows(frame: pd.DataFrame, lang: str = "zh") -> list[PrintRow]:
    """Priority-list rows (in list order) as the printed workbook shows them. Built column by column from
    Python lists: iterating the Arrow-backed columns value by value took a second at 1M persons."""

    def texts(column: str, fill: bool = True) -> list[str]:
        values = frame[column].fillna("") if fill else frame[column]
        return list(map(str, values.tolist()))

    reasons = "top_reasons_en" if lang == "en" else "top_reasons"
    columns = [
        texts("name"),
        texts("village_id", fill=False),
        texts("phone"),
        texts("tier", fill=False),
        texts(reasons),
        texts("last_bp"),
        texts("last_bp_date"),
        texts("last_fpg"),
        texts("last_fpg_date"),
        texts("next_due_on"),
        list(map(int, frame["days_overdue"].tolist())),
    ]
    return list(map(PrintRow, *columns))


# The team workbook jobs of each PendingExport with workers (by id), as its forked workers inherit them.
_INHERITED: dict[int, list[tuple]] = {}


def _write_inherited(export: int, index: int) -> None:
    """In a list worker: the team workbook of job `index` of the export, from the inherited jobs."""
    jobs = _INHERITED.get(export)
    if jobs is None:  # a worker started after the export was registered never forks without them
        raise RuntimeError("a list worker without the workbook jobs: the pool must fork at the first submit")
    write_team_workbook(*jobs[index])


class PendingExport:
    """List export started in the background: team workbooks are written by `workers` forked processes
    from the moment this object exists, so the caller can compute other products (the unmanaged list)
    and write the CSV files meanwhile; `finish` waits for the workbooks. Cell writing is pure Python and
    was the longest part of the lists stage."""

    def __init__(
        self,
        priority: pd.DataFrame,
        out_dir: Path,
        run_date: str,
        xlsx: bool = True,
        workers: int = 2,
        lang: str = "zh",
        legend: dict[str, str] | None = None,
        village_names: dict[str, str] | None = None,
    ) -> None:
        self.priority, self.out_dir = priority, out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "run_date": run_date,
            "lang": lang,
            "legend": legend or {},
            "village_names": village_names or {},
        }
        self.jobs = _workbook_jobs(priority, out_dir / "xlsx", settings) if xlsx else []
        self.pool = None
        self.futures: list = []
        if self.jobs and workers > 1:
            from risk.workers import process_pool

            # the workers fork at the first submit and find the jobs in their copy of _INHERITED: handing
            # 146k rows over through the pool's queue cost 1.4 s of pickling here (beside the call lists)
            # and 0.6 s of unpickling in the workers at 1M persons
            _INHERITED[id(self)] = self.jobs
            self.pool = process_pool(workers)  # workers die with this process, even on kill -9
            self.futures = [
                self.pool.submit(_write_inherited, id(self), index) for index in range(len(self.jobs))
            ]

    def submit(self, function: Callable[..., None], *args: object) -> None:
        """One more workbook for the same workers (the call lists' team workbooks), queued behind the
        priority workbooks; `finish` waits for it too. Written at once when there are no workers."""
        if self.pool is None:
            function(*args)
        else:
            self.futures.append(self.pool.submit(function, *args))

    def finish(self, unmanaged: pd.DataFrame | None) -> ListExport:
        """The CSV files (with the unmanaged list, unless it is None: then it is in out_dir already), then
        waiting for the workbooks; the files are counted on disk."""
        try:
            priority, out_dir = self.priority, self.out_dir
            # made inert once for the county file and every group file (inert_table leaves an inert value
            # as it is: an escaped value starts with the apostrophe)
            table = inert_table(pa.Table.from_pandas(priority, preserve_index=False))
            write_csv(table, out_dir / "priority_all.csv", already_inert=True)
            csv_files = 1
            ranks = priority["rank"].to_numpy()
            for by, folder in (("team_id", "teams"), ("village_id", "villages"), ("unit_id", "units")):
                keys = priority[by].to_numpy(dtype=object)
                grouped = team_csv_table(table) if folder == "teams" else table
                csv_files += _write_csv_groups(grouped, keys, ranks, out_dir / folder)
            if unmanaged is not None:  # else written beside the tiers stage (export_unmanaged)
                write_csv(unmanaged, out_dir / UNMANAGED_CSV)
            if self.pool is None:
                for job in self.jobs:
                    write_team_workbook(*job)
            for future in self.futures:
                future.result()
        finally:
            self.close()
        # counted on disk: a count of what we meant to write once hid files that overwrote each other
        written = [p for p in out_dir.rglob("*") if p.is_file()]
        csv_written = sum(p.suffix == ".csv" for p in written)
        xlsx_written = sum(p.suffix == ".xlsx" for p in written)
        if (csv_written, xlsx_written) != (csv_files + 1, len(self.jobs)):
            raise RuntimeError(
                f"list files do not add up: {csv_written} CSV and {xlsx_written} XLSX "
                f"written, {csv_files + 1} and {len(self.jobs)} expected"
            )
        return ListExport(csv_files=csv_written, xlsx_files=xlsx_written, rows=len(priority))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        _INHERITED.pop(id(self), None)


def export_lists(
    priority: pd.DataFrame,
    unmanaged: pd.DataFrame,
    out_dir: Path,
    run_date: str,
    xlsx: bool = True,
    workers: int = 2,
    lang: str = "zh",
    legend: dict[str, str] | None = None,
) -> ListExport:
    """CSV per team, per village and per unit; an XLSX per team; the unmanaged key-population list."""
    return PendingExport(
        priority, out_dir, run_date, xlsx=xlsx, workers=workers, lang=lang, legend=legend
    ).finish(unmanaged)


def _workbook_jobs(priority: pd.DataFrame, folder: Path, settings: dict) -> list[tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    # text cells inert (a leading = + - @ escaped), like every spreadsheet the project writes
    priority = inert_frame(priority[[c for c in PRINT_SOURCE_COLUMNS if c in priority]])
    rows = print_rows(priority, settings["lang"])  # once for the county, then each team's in list order
    teams = priority["team_id"].to_numpy()
    order = np.argsort(teams, kind="stable")
    jobs = []
    for start, stop in _runs(teams[order]):
        index = order[start:stop]
        team = teams[index[0]]
        team_rows = [rows[i] for i in index.tolist()]
        jobs.append(
            (team_rows, folder / f"{file_stem(team)}.xlsx", PrintSettings(team=str(team), **settings))
        )
    return jobs
