"""Measure a generated county against its calibration targets (from county-facts.md).

    python -m risk.synth.calibration OUT [--doc docs/synthetic-data.md]

prints the table and, with --doc, rewrites the block between the calibration markers of the document.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import duckdb

from risk.definitions import synth_profile
from risk.sql import literal

START_MARK = "<!-- calibration:start -->"
END_MARK = "<!-- calibration:end -->"

# Valid measurement rows only (dirty rows are excluded the way validation would drop them).
CLEAN_VITALS = "sbp BETWEEN 50 AND 300 AND dbp BETWEEN 20 AND 200 AND sbp > dbp"


def _source(folder: Path, table: str, file_format: str) -> str:
    path = folder / f"{table}.{file_format}"
    if file_format == "csv":
        return f"read_csv({literal(path)}, header=true, auto_detect=true, sample_size=-1)"
    return f"read_parquet({literal(path)})"


def measure(folder: Path, file_format: str | None = None) -> dict[str, float]:
    """Headline figures of a generated folder, named as in the calibration table."""
    folder = Path(folder)
    meta = json.loads((folder / "_synth" / "meta.json").read_text(encoding="utf-8"))
    file_format = file_format or meta["config"]["file_format"]
    start, end = meta["config"]["start"], meta["config"]["end"]
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for table in ("persons", "conditions", "vitals", "labs", "follow_ups", "encounters"):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM {_source(folder, table, file_format)}")
    truth = literal(folder / "_synth" / "truth.parquet")
    con.execute(f"CREATE VIEW truth AS SELECT * FROM read_parquet({truth})")
    con.execute(f"""CREATE TEMP TABLE p AS
                    SELECT *, date_diff('day', birth_date, DATE '{end}') / 365.25 AS age_end FROM persons""")
    con.execute(f"""
        CREATE TEMP TABLE managed AS
        SELECT c.person_id, c.condition FROM conditions c JOIN p USING (person_id)
        WHERE c.condition IN ('hypertension', 'diabetes_t2') AND c.ended_on IS NULL AND p.death_date IS NULL
          AND c.enrolled_on <= DATE '{end}' - INTERVAL 365 DAY""")
    years = ((date.fromisoformat(end) - date.fromisoformat(start)).days + 1) / 365.25
    q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    n = q("SELECT count(*) FROM p")
    figures: dict[str, float] = {"persons": n, "years of history": years}
    figures["male share"] = q("SELECT avg((sex = 'M')::int) FROM p")
    figures["share aged 65+ (end)"] = q("SELECT avg((age_end >= 65)::int) FROM p")
    figures["true hypertension prevalence"] = q("SELECT count(*) FROM truth WHERE true_hypertension") / n
    figures["true diabetes prevalence"] = q("SELECT count(*) FROM truth WHERE true_diabetes") / n
    for code, label in (("hypertension", "hypertension"), ("diabetes_t2", "diabetes")):
        figures[f"registered {label} per resident"] = (
            q(f"SELECT count(DISTINCT person_id) FROM conditions WHERE condition = '{code}'") / n
        )
    figures["signing rate among registered chronic patients"] = q("""
        SELECT avg(signed_contract::int) FROM p WHERE person_id IN (SELECT person_id FROM conditions)""")
    figures["signed contracts per resident"] = q("SELECT avg(signed_contract::int) FROM p")
    figures["follow-ups per managed hypertensive, final year"] = q(f"""
        SELECT count(*) / (SELECT count(*) FROM managed WHERE condition = 'hypertension') FROM follow_ups
        WHERE condition = 'hypertension' AND followed_on > DATE '{end}' - INTERVAL 365 DAY
          AND person_id IN (SELECT person_id FROM managed WHERE condition = 'hypertension')""")
    figures["standardised management (>=4 follow-ups), hypertension"] = q(f"""
        SELECT avg((coalesce(k, 0) >= 4)::int)
        FROM (SELECT person_id FROM managed WHERE condition = 'hypertension')
        LEFT JOIN (SELECT person_id, count(*) AS k FROM follow_ups WHERE condition = 'hypertension'
                   AND followed_on > DATE '{end}' - INTERVAL 365 DAY GROUP BY ALL) USING (person_id)""")
    con.execute(f"""
        CREATE TEMP TABLE last_bp AS
        SELECT person_id, arg_max(sbp, measured_at) AS sbp, arg_max(dbp, measured_at) AS dbp FROM vitals
        WHERE source = 'follow_up' AND {CLEAN_VITALS} AND measured_at > DATE '{end}' - INTERVAL 365 DAY
        GROUP BY person_id""")
    figures["BP control, managed hypertensives with a reading"] = q("""
        SELECT avg((sbp < 140 AND dbp < 90)::int) FROM last_bp
        WHERE person_id IN (SELECT person_id FROM managed WHERE condition = 'hypertension')""")
    figures["BP control, all managed hypertensives (no reading = not)"] = q("""
        SELECT avg(coalesce(sbp < 140 AND dbp < 90, false)::int)
        FROM (SELECT person_id FROM managed WHERE condition = 'hypertension')
        LEFT JOIN last_bp USING (person_id)""")
    con.execute(f"""
        CREATE TEMP TABLE last_fpg AS
        SELECT person_id,
               arg_max(CASE WHEN unit = 'mg/dL' THEN value * 0.0555062 ELSE value END, measured_at) AS fpg
        FROM labs WHERE test = 'fpg' AND measured_at > DATE '{end}' - INTERVAL 365 DAY GROUP BY person_id""")
    figures["glucose control (FPG < 7), managed diabetics with a test"] = q("""
        SELECT avg((fpg < 7.0)::int) FROM last_fpg
        WHERE person_id IN (SELECT person_id FROM managed WHERE condition = 'diabetes_t2')""")
    inpatient = "FROM encounters WHERE setting = 'inpatient'"
    figures["admissions per resident-year"] = q(f"SELECT count(*) {inpatient}") / n / years
    figures["inpatient care within the county"] = q(
        f"SELECT avg((facility_level <> 'outside_county')::int) {inpatient}"
    )
    profile = meta.get("profile", {}).get("name", "suixi")
    scale = synth_profile(profile)["targets"]["resident_population"] / n / years
    figures["hypertension admissions per year (scaled to 932k)"] = (
        q(f"SELECT count(*) {inpatient} AND (primary_dx = 'I10' OR primary_dx LIKE 'I11%')") * scale
    )
    figures["fund paid per hypertension admission (yuan)"] = (
        q(f"SELECT avg(fund_paid) {inpatient} AND primary_dx = 'I10' AND fund_paid <= total_cost") or 0.0
    )
    figures["diabetes admissions per year (scaled to 932k)"] = (
        q(f"SELECT count(*) {inpatient} AND primary_dx LIKE 'E11%'") * scale
    )
    figures["diabetes admissions with a complication"] = (
        q(f"SELECT avg((primary_dx <> 'E11.9')::int) {inpatient} AND primary_dx LIKE 'E11%'") or 0.0
    )
    figures["deaths per resident-year"] = q("SELECT count(death_date) FROM p") / n / years
    by_quintile = con.execute("""
        SELECT avg((cv_admissions + complications > 0 OR death_date IS NOT NULL)::int)
        FROM (SELECT *, ntile(5) OVER (ORDER BY latent_risk) AS quintile FROM truth)
        GROUP BY quintile ORDER BY quintile""").fetchall()
    for quintile, (share,) in enumerate(by_quintile, start=1):
        figures[f"patients with a CV admission, complication or death, risk quintile {quintile}"] = share
    # a figure with an empty denominator (a very small county) is not a number, not a crash
    return {k: float("nan") if v is None else float(v) for k, v in figures.items()}


def targets(profile: str = "suixi") -> dict[str, tuple[float, str]]:
    """Calibration target per figure, with where it comes from."""
    t = synth_profile(profile)["targets"]
    pop = t["resident_population"]
    cf = "county-facts.md"
    return {
        "registered hypertension per resident": (
            t["hypertension_registered"] / pop,
            f"{cf}: 104,000 / 932,000",
        ),
        "registered diabetes per resident": (t["diabetes_registered"] / pop, f"{cf}: 27,800 / 932,000"),
        "signing rate among registered chronic patients": (
            t["signing_rate_chronic"],
            f"{cf}: 96.75 % (2025)",
        ),
        "signed contracts per resident": (t["paid_contracts"] / pop, f"{cf}: 165,000 paid contracts (2022)"),
        "follow-ups per managed hypertensive, final year": (4.0, "national service standard: >= 4 a year"),
        "BP control, managed hypertensives with a reading": (
            t["bp_control_target"],
            f"{cf}: policy >= 60 % (2023)",
        ),
        "glucose control (FPG < 7), managed diabetics with a test": (
            t["glucose_control_target"],
            f"{cf}: policy >= 60 % (2023)",
        ),
        "admissions per resident-year": (t["admission_rate"], f"{cf}: 11.68 % (2021)"),
        "inpatient care within the county": (
            t["within_county_share"],
            f"{cf}: 85 % county-domestic care (2021)",
        ),
        "hypertension admissions per year (scaled to 932k)": (
            t["hypertension_admissions_per_year"],
            f"{cf}: 935 (2021)",
        ),
        "fund paid per hypertension admission (yuan)": (
            t["hypertension_fund_per_admission"],
            f"{cf}: 2,324 (2021)",
        ),
        "diabetes admissions per year (scaled to 932k)": (
            t["diabetes_admissions_per_year"],
            f"{cf}: 2,046 (2021)",
        ),
        "diabetes admissions with a complication": (
            t["diabetes_complication_share"],
            f"{cf}: 26.34 % (2021)",
        ),
        "deaths per resident-year": (t["crude_death_rate"], "assumed 6-8 per 1,000 (not in county-facts)"),
    }


def markdown_table(figures: dict[str, float]) -> str:
    goals = targets()
    lines = ["| figure | target | generated | source of target |", "|---|---|---|---|"]
    for key, value in figures.items():
        target, source = goals.get(key, (None, "(not calibrated, shown for context)"))
        lines.append(f"| {key} | {_fmt(target)} | {_fmt(value)} | {source} |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def write_doc(doc: Path, figures: dict[str, float], header: str) -> None:
    text = doc.read_text(encoding="utf-8")
    if START_MARK not in text or END_MARK not in text:
        raise SystemExit(f"{doc}: calibration markers not found")
    before = text.split(START_MARK)[0]
    after = text.split(END_MARK)[1]
    doc.write_text(
        f"{before}{START_MARK}\n{header}\n\n{markdown_table(figures)}\n{END_MARK}{after}", encoding="utf-8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    figures = measure(args.folder)
    meta = json.loads((args.folder / "_synth" / "meta.json").read_text(encoding="utf-8"))
    cfg = meta["config"]
    header = (
        f"Generated with `risk synth --persons {cfg['persons']} --seed {cfg['seed']} --start {cfg['start']} "
        f"--end {cfg['end']}` (code {meta['code_version']}, "
        f"definitions {meta['synth_definitions_version']}).\n"
        "Rows: " + ", ".join(f"{name} {count:,}" for name, count in meta["rows"].items()) + "."
    )
    print(header)
    print(markdown_table(figures))
    if args.doc:
        write_doc(args.doc, figures, header)


if __name__ == "__main__":
    main()
