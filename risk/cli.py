"""The `risk` command line. Each command is a thin shell over a library function.

User mistakes (RiskUserError) print one clear line and exit 2; they never show a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from risk.errors import RiskUserError

app = typer.Typer(
    name="risk",
    help="Red / yellow / green chronic-disease risk stratification for county primary care.\n\n"
    "县域慢病（高血压、2型糖尿病）红黄绿三色风险分级：名单、查询和指标报表。\n\n"
    "Example / 示例:  risk demo --out runs/demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


RulesOption = Annotated[Path | None, typer.Option(help="Rule-set YAML (default: the packaged rule set)")]
AllowEmptyOption = Annotated[list[str] | None, typer.Option(
    "--allow-empty", help="Run although this needed table is missing or has no accepted row (repeatable; "
                          "recorded as a warning in the run)")]
AllowLateAsOfOption = Annotated[bool, typer.Option(
    "--allow-late-as-of", help="Run although --as-of is after today or long after the newest event in the "
                               "data (everybody would look overdue); recorded as a warning")]
AcceptDriftOption = Annotated[bool, typer.Option(
    "--accept-model-drift", help="Score with the model although the data do not resemble its training "
                                 "population (PSI above the policy threshold); recorded as a warning")]


def user_errors_are_clean(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RiskUserError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None
        except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            # a path the user gave cannot be written or read as asked (e.g. --out names a folder)
            path = exc.filename2 or exc.filename
            typer.secho(f"error: {path}: {exc.strerror}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def must_exist(path: Path | str, what: str, folder: bool = True) -> None:
    """Fail at once, before any heavy import, when a path the command needs is missing."""
    path = Path(path)
    if folder and not path.is_dir():
        raise RiskUserError(f"{path}: {what} folder does not exist or is not a folder / 找不到文件夹")
    if not folder and not path.exists():
        raise RiskUserError(f"{path}: {what}: no such file or folder / 找不到文件或文件夹")


def _print_version(value: bool) -> None:
    if value:
        import risk

        typer.echo(f"risk {risk.__version__}")
        raise typer.Exit()


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise RiskUserError(f"'{value}' is not a date in YYYY-MM-DD form") from exc


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging / 详细日志")] = False,
    dev_id_key: Annotated[bool, typer.Option(
        "--dev-id-key", help="Hash national IDs with the development key when RISK_ID_KEY is not set "
                             "(synthetic or test data only; recorded in run.json and summary.md) / "
                             "未设置 RISK_ID_KEY 时用开发密钥（仅限模拟或测试数据）")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit / 显示版本")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if dev_id_key:
        from risk import privacy

        privacy.allow_dev_key()
    if not verbose:  # Alembic narrates every schema comparison of the serving store at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.showwarning = _warning_as_log_line


def _warning_as_log_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A warning is one readable log line, not Python's two lines with the source file and code."""
    logging.getLogger("risk").warning("%s", " ".join(str(message).split()))


@app.command()
@user_errors_are_clean
def synth(
    out: Annotated[Path, typer.Option(help="Output folder for the synthetic input tables")],
    persons: Annotated[int, typer.Option(help="Number of residents")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 20261125,
    start: Annotated[str, typer.Option(help="First date of history")] = "2021-01-01",
    end: Annotated[str, typer.Option(help="Last date of history")] = "2024-12-31",
    dirty_share: Annotated[float, typer.Option(help="Share of rows made dirty on purpose")] = 0.005,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    home_bp_per_year: Annotated[float, typer.Option(help="Home BP readings / patient / year (stress)")] = 0.0,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists")] = False,
    profile: Annotated[str, typer.Option(help="County profile: suixi, urban_south")] = "suixi",
) -> None:
    """Generate a realistic, calibrated synthetic county (Suixi-like) in the input data contract."""
    from risk.synth import SynthConfig, generate_county

    config = SynthConfig(
        persons=persons, seed=seed, start=parse_date(start), end=parse_date(end),
        dirty_share=dirty_share, file_format=file_format, home_bp_per_year=home_bp_per_year,
        overwrite=overwrite, profile=profile,
    )
    summary = generate_county(config, out)
    typer.echo(summary.render())


@app.command()
@user_errors_are_clean
def validate(
    input_dir: Annotated[Path, typer.Argument(help="Folder with one file per input table")],
    out: Annotated[Path, typer.Option(help="Output folder for canonical tables and quarantine")],
    as_of: Annotated[str | None, typer.Option(help="Reference date for 'in the future' checks")] = None,
    allow_empty: AllowEmptyOption = None,
) -> None:
    """Validate an input folder: canonical tables + quarantine with reason codes, counts that add up."""
    must_exist(input_dir, "input")
    from risk.validate import validate_folder

    result = validate_folder(input_dir, out, as_of=parse_date(as_of) if as_of else None,
                             allow_empty=frozenset(allow_empty or ()))
    typer.echo(result.render())


@app.command()
@user_errors_are_clean
def features(
    input_dir: Annotated[Path, typer.Argument(help="Validated output folder (containing canonical/)")],
    as_of: Annotated[str, typer.Option(help="As-of date YYYY-MM-DD; only events on or before it are used")],
    out: Annotated[Path, typer.Option(help="Feature Parquet file to write (atomically)")],
    engine: Annotated[str, typer.Option(help="duckdb, or spark (OUT becomes a folder partitioned by "
                                             "township_id; docs/scaling.md)")] = "duckdb",
    spark_master: Annotated[str | None, typer.Option(help="Spark master URL (default local[2])")] = None,
    columns: Annotated[str | None, typer.Option(help="Only these features, comma-separated (default: the "
                                                     "whole catalogue)")] = None,
) -> None:
    """As-of features: one row per person under chronic-disease management (docs/features.md)."""
    must_exist(input_dir, "validated")
    from risk.features import FEATURE_SET_VERSION, compute_features_table
    from risk.features.pipeline import write_parquet_atomically
    from risk.run.folder import RunFolder

    canonical = RunFolder.open(input_dir).canonical
    selected = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
    if engine == "spark":
        from risk.engines.spark_features import compute_features_partitioned

        rows = compute_features_partitioned(canonical, parse_date(as_of), out, master=spark_master,
                                            columns=selected)
        typer.echo(f"wrote {out}/ (partitioned by township_id): {rows} persons (feature set "
                   f"{FEATURE_SET_VERSION}, Spark) as of {as_of}")
        return
    if engine != "duckdb":
        raise RiskUserError(f"unknown feature engine '{engine}' (available: duckdb, spark)")
    # The Arrow table is written as it is: a pandas frame only to count its rows cost ~10 % of the command.
    table = compute_features_table(canonical, parse_date(as_of), columns=selected)
    write_parquet_atomically(table, out)
    typer.echo(f"wrote {out}: {table.num_rows} persons, {table.num_columns} features "
               f"(feature set {FEATURE_SET_VERSION}) as of {as_of}")


@app.command()
@user_errors_are_clean
def nightly(
    input_dir: Annotated[Path, typer.Argument(help="Raw input folder (data contract)")],
    as_of: Annotated[str, typer.Option(help="Scoring date YYYY-MM-DD; only events on or before it are used")],
    out: Annotated[Path, typer.Option(help="Run folder to create (published atomically)")],
    rules: Annotated[Path | None, typer.Option(help="Rule-set YAML (default: the packaged rule set)")] = None,
    model: Annotated[Path | None, typer.Option(help="Exported model folder (default: newest)")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="Rules only")] = False,
    previous: Annotated[Path | None, typer.Option(help="Previous run folder for tier transitions")] = None,
    store: Annotated[str | None, typer.Option(help="Also publish to this serving store URL")] = None,
    xlsx: Annotated[bool, typer.Option(help="Write XLSX workbooks per team")] = True,
    engine: Annotated[str, typer.Option(help="duckdb, or spark: features and tiers on Spark, also "
                                             "written partitioned by township_id")] = "duckdb",
    spark_master: Annotated[str | None, typer.Option(help="Spark master URL (default local[2])")] = None,
    allow_empty: AllowEmptyOption = None,
    allow_late_as_of: AllowLateAsOfOption = False,
    accept_model_drift: AcceptDriftOption = False,
    lang: Annotated[str, typer.Option(help="Printed team workbooks in zh (default) or en")] = "zh",
) -> None:
    """Nightly job: validate -> features -> tiers -> lists -> run report."""
    if lang not in ("zh", "en"):
        raise RiskUserError(f"--lang must be zh or en, not '{lang}'")
    must_exist(input_dir, "input")
    from pipelines.nightly import NightlyOptions, run_nightly

    result = run_nightly(NightlyOptions(
        input_dir=input_dir, as_of=parse_date(as_of), out=out, rules=rules, model_dir=model,
        use_model=not no_model, previous_run=previous, xlsx=xlsx, store_url=store,
        engine=engine, spark_master=spark_master, allow_empty=frozenset(allow_empty or ()),
        allow_late_as_of=allow_late_as_of, accept_model_drift=accept_model_drift, lang=lang,
    ))
    typer.echo(result.render())


@app.command()
@user_errors_are_clean
def backfill(
    input_dir: Annotated[Path, typer.Argument(help="Raw input folder (data contract)")],
    start: Annotated[str, typer.Option(help="First date YYYY-MM-DD (runs at month ends from here)")],
    end: Annotated[str, typer.Option(help="Last date YYYY-MM-DD")],
    runs_root: Annotated[Path, typer.Option(help="Folder receiving one run per date")],
    every_months: Annotated[int, typer.Option(help="Months between runs (3 = quarter ends)")] = 3,
    rules: Annotated[Path | None, typer.Option(help="Rule-set YAML (default: the packaged rule set)")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="Rules only")] = False,
    xlsx: Annotated[bool, typer.Option(help="Write XLSX workbooks per team")] = False,
    allow_empty: AllowEmptyOption = None,
    allow_late_as_of: AllowLateAsOfOption = False,
    accept_model_drift: AcceptDriftOption = False,
) -> None:
    """The nightly job at past month ends, for tier mix and transitions over time."""
    must_exist(input_dir, "input")
    from pipelines.backfill import backfill_dates, run_backfill
    from pipelines.nightly import NightlyOptions

    dates = backfill_dates(parse_date(start), parse_date(end), every_months)
    template = NightlyOptions(input_dir=input_dir, as_of=dates[0] if dates else parse_date(end),
                              out=runs_root, rules=rules, use_model=not no_model, xlsx=xlsx,
                              allow_empty=frozenset(allow_empty or ()), allow_late_as_of=allow_late_as_of,
                              accept_model_drift=accept_model_drift)
    for result in run_backfill(template, runs_root, dates):
        counts = result.manifest["counts"]["tier"]
        typer.echo(f"{result.manifest['as_of']}: {result.manifest['counts']['tiered']:,} tiered "
                   f"(red {counts.get('red', 0):,}, yellow {counts.get('yellow', 0):,}, "
                   f"green {counts.get('green', 0):,}) -> {result.run_dir}")


@app.command()
@user_errors_are_clean
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo county and its runs")] = Path("runs/demo"),
    persons: Annotated[int, typer.Option(help="Residents in the synthetic county")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 20261125,
    as_of: Annotated[str, typer.Option(help="Scoring date of the latest run")] = "2024-12-31",
    accept_model_drift: AcceptDriftOption = False,
) -> None:
    """End to end on the embedded default: synthetic county -> validate -> features -> tiers -> lists ->
    report, for the previous quarter and the scoring date (so tier transitions show)."""
    from pipelines.demo import run_demo
    from risk import privacy

    if not privacy.key_kind_or_none():
        privacy.allow_dev_key()  # the demo county is synthetic; run.json and summary.md say which key
    typer.echo(run_demo(out, persons=persons, seed=seed, as_of=parse_date(as_of),
                        accept_model_drift=accept_model_drift))


@app.command()
@user_errors_are_clean
def publish(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (output of `risk nightly`)")],
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
    keep_runs: Annotated[int, typer.Option(help="Runs whose patient rows are kept (history is kept)")] = 2,
    make_current: Annotated[bool, typer.Option(
        "--make-current", help="Serve this run even though it is older than the current one")] = False,
) -> None:
    """Publish a run to the serving store atomically (readers see the old run or the new, never a mix)."""
    must_exist(run_dir, "run")
    from risk.serving import publish_run

    typer.echo(publish_run(run_dir, store, keep_runs=keep_runs, make_current=make_current).render())


runs_app = typer.Typer(help="Runs in the serving store and which one readers see.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@user_errors_are_clean
def runs_list(
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
) -> None:
    """Runs in the store, newest first; `*` marks the current run."""
    from risk.serving.publish import list_runs

    runs = list_runs(store)
    if not runs:
        typer.echo("no runs published")
    for run in runs:
        published = run["published_at"].isoformat(timespec="seconds") if run["published_at"] else "-"
        typer.echo(f"{'*' if run['current'] else ' '} {run['run_id']}  as of {run['as_of']}  "
                   f"{run['state']:<9} {run['n_persons']:>9,} persons  published {published}")


@runs_app.command("current")
@user_errors_are_clean
def runs_current(
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
    run_id: Annotated[str | None, typer.Argument(help="Make this published run the current one")] = None,
) -> None:
    """Show the run readers see, or point them at RUN_ID (an older run stays selectable until pruned)."""
    from risk.serving.publish import list_runs, set_current_run

    if run_id is not None:
        set_current_run(store, run_id)
        typer.echo(f"current run is now {run_id}")
        return
    current = [run for run in list_runs(store) if run["current"]]
    typer.echo(f"{current[0]['run_id']} (as of {current[0]['as_of']})" if current else "no current run")


@app.command()
@user_errors_are_clean
def serve(
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes; 0 (the default) starts one per CPU core", min=0)
    ] = 0,
) -> None:
    """Clinician lookup API (OpenAPI at /api/docs) and web page, from the serving store."""
    import os

    import uvicorn

    from risk.serving.api import STORE_URL_ENV, create_app

    workers = workers or os.cpu_count() or 1
    from risk.serving.workers import run_workers, settle_heap

    if workers == 1:
        served = create_app(store)
        settle_heap()
        uvicorn.run(served, host=host, port=port, log_level="info", timeout_keep_alive=30)
        return
    from functools import partial

    create_app(store).state.engine.dispose()  # fail here, with one clear line, if the store cannot be opened
    os.environ[STORE_URL_ENV] = store
    run_workers(partial(create_app, store), host=host, port=port, workers=workers)


@app.command()
@user_errors_are_clean
def calls(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (output of `risk nightly`)")],
    out: Annotated[Path, typer.Option(help="Output folder for the call lists")],
    on: Annotated[str, typer.Option("--date", help="List date YYYY-MM-DD (on or after the run's as-of)")],
    store: Annotated[str | None, typer.Option(help="Serving store holding the call results so far")] = None,
    window: Annotated[str, typer.Option(help="day or week: who is due up to the date or the week")] = "week",
    capacity: Annotated[int | None, typer.Option(help="Calls per village doctor per day")] = None,
    xlsx: Annotated[bool, typer.Option(help="Also write a printable workbook per team")] = True,
) -> None:
    """Call lists for village doctors (外呼): calls.csv (docs/call-lists.md), workbooks, home-visit tasks."""
    must_exist(run_dir, "run")
    from pipelines.calls import results_from_store, run_calls

    if window not in ("day", "week"):
        raise RiskUserError(f"--window must be day or week, not '{window}'")
    day = parse_date(on)
    results = results_from_store(store, day) if store else None
    typer.echo(run_calls(run_dir, day, out, results=results, window_days=1 if window == "day" else 7,
                         daily_capacity=capacity, xlsx=xlsx).render())


results_app = typer.Typer(help="Call results coming back from village doctors and phone platforms.",
                          no_args_is_help=True)
app.add_typer(results_app, name="results")


@results_app.command("import")
@user_errors_are_clean
def results_import(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX: a filled-in call list or a platform export")],
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
    as_user: Annotated[str | None, typer.Option("--as", help="Record as this user, within its scope")] = None,
    quarantine: Annotated[Path | None, typer.Option(help="Quarantine file (FILE.quarantine.csv)")] = None,
) -> None:
    """Import call results; each row is accepted, already recorded, or quarantined with a reason."""
    from risk.serving.call_results import import_results_file

    typer.echo(import_results_file(file, store, as_user=as_user, quarantine_out=quarantine).render())


users_app = typer.Typer(help="Users and bearer tokens of the lookup API.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
@user_errors_are_clean
def users_add(
    name: Annotated[str, typer.Argument(help="User name (shown in the audit trail) / 用户名")],
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
    role: Annotated[str | None, typer.Option(help="village_doctor, team, township, county_admin or analyst "
                                                  "(needed to create a user)")] = None,
    team: Annotated[str | None, typer.Option(help="Team id (village_doctor, team)")] = None,
    township: Annotated[str | None, typer.Option(help="Township id (township)")] = None,
    password: Annotated[bool, typer.Option(
        "--password",
        help="Ask for a password for the web page (sets it, or resets it and unlocks an existing user)",
    )] = False,
) -> None:
    """Create a user (prints its bearer token once) and/or set or reset its web-page password."""
    from risk.serving.auth import add_user, set_password, user_exists
    from risk.serving.store import open_store

    engine = open_store(store, create=True)
    try:
        exists = user_exists(engine, name.strip())
        if exists and not password:
            raise RiskUserError(f"user '{name}' already exists (add --password to reset its password, or "
                                "revoke it first to issue a new token)")
        token = None
        if not exists:
            if role is None:
                raise RiskUserError("--role is needed to create a user")
            token = add_user(engine, name, role, team_id=team, township_id=township)
        if password:
            secret = typer.prompt("password / 密码", hide_input=True, confirmation_prompt=True)
            set_password(engine, name.strip(), secret)
    finally:
        engine.dispose()
    if token:
        typer.echo(f"user {name} ({role}) created; token for machine clients, shown only now:")
        typer.echo(token)
    if password:
        typer.echo(f"password for {name} {'reset' if exists else 'set'}; the user logs in on the web page")


@users_app.command("revoke")
@user_errors_are_clean
def users_revoke(
    name: Annotated[str, typer.Argument(help="User name")],
    store: Annotated[str, typer.Option(help="Serving store: SQLAlchemy URL or SQLite file path")],
) -> None:
    """Revoke a user's token at once."""
    from risk.serving.auth import revoke_user
    from risk.serving.store import open_store

    engine = open_store(store)
    try:
        revoke_user(engine, name)
    finally:
        engine.dispose()
    typer.echo(f"user {name} revoked")


import_app = typer.Typer(help="Import standard interchange formats into the input data contract.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("fhir")
@user_errors_are_clean
def import_fhir_command(
    path: Annotated[Path, typer.Argument(help="Folder, .tar.gz archive, JSON bundles or NDJSON bulk export")],
    out: Annotated[Path, typer.Option(help="Output input folder (raw data contract)")],
    assignments: Annotated[Path | None, typer.Option(
        help="CSV person_id,township_id,village_id,unit_id,team_id,signed_contract")] = None,
    force: Annotated[bool, typer.Option(help="Replace OUT if it exists")] = False,
) -> None:
    """Import HL7 FHIR (STU3/R4) bundles or NDJSON into the input tables (docs/fhir-import.md)."""
    must_exist(path, "FHIR source", folder=False)
    from risk.interop.fhir import import_fhir

    report = import_fhir(path, out, assignments=assignments, force=force)
    typer.echo(report.render())


@app.command()
@user_errors_are_clean
def report(
    indicator: Annotated[str, typer.Argument(help="Indicator id (docs/indicators.md), e.g. bp_control_cn")],
    run: Annotated[Path, typer.Option(help="Run folder (risk nightly) or a risk validate output")],
    out: Annotated[Path, typer.Option(help="Output file (.html, .csv or .xlsx)")],
    period: Annotated[str | None, typer.Option(help="2024, 2024Q4 or 2024-11")] = None,
    by: Annotated[str, typer.Option(help="county, township, unit, team, village or tier")] = "township",
    over: Annotated[str | None, typer.Option(help="Split the period by month, quarter or year")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="html, csv or xlsx")] = None,
    min_count: Annotated[int | None, typer.Option(help="Hide cells about fewer people")] = None,
    previous: Annotated[Path | None, typer.Option(help="Earlier run (tier_transitions)")] = None,
    runs_root: Annotated[
        Path | None, typer.Option(help="Folder of runs (tier_mix, capitation, call_cascade)")
    ] = None,
    year: Annotated[int | None, typer.Option(help="Budget year (capitation)")] = None,
    split: Annotated[str | None, typer.Option(help="Alternative surplus split (capitation)")] = None,
    what_if: Annotated[str | None, typer.Option(help="What-if scenario id (capitation)")] = None,
    definitions: Annotated[Path | None, typer.Option(help="County capitation.yaml (capitation)")] = None,
    store: Annotated[str | None, typer.Option(
        help="Serving store: capitation also stores its table for the API; call_cascade is recomputed "
             "from its call results")] = None,
    lang: Annotated[str, typer.Option(help="CSV/XLSX headers: zh (default; XLSX adds the machine names as "
                                           "a second row) or en (machine names only)")] = "zh",
) -> None:
    """Export one indicator by period and breakdown, with Wilson intervals and small-cell suppression.
    `capitation`: budget vs fund spend by township, O/E, projection and split (--year).
    `call_cascade`: the monthly follow-up call cascade (the run's own, or recomputed with --store)."""
    must_exist(run, "run")
    from risk.indicators.periods import GRAINS
    from risk.indicators.report import write_indicator_report, write_tier_report

    if indicator == "capitation":
        from risk.capitation.render import capitation_report_file

        if year is None:
            raise RiskUserError("--year is required for the capitation report (e.g. --year 2024)")
        path, built = capitation_report_file(
            run, year, out, fmt=file_format, by=by, runs_root=runs_root, split=split, what_if=what_if,
            definitions=definitions, min_count=min_count,
        )
        if store:
            from risk.capitation.render import township_records
            from risk.serving.capitation import store_capitation

            run_id = str(built.provenance.get("run") or run.name)
            n = store_capitation(store, run_id, built.as_of, year, township_records(built),
                                 built.definitions.version)
            typer.echo(f"stored {n} township rows of {year} for the API (/api/capitation/{year})")
    elif indicator == "call_cascade":
        from risk.indicators.cascade import write_cascade_report

        results = None
        if store is not None:
            from pipelines.calls import results_from_store

            results = results_from_store(store, date.max)
        path = write_cascade_report(run, out, month=period, results=results, runs_root=runs_root,
                                    min_count=min_count, fmt=file_format)
    elif indicator in ("tier_mix", "tier_transitions"):
        path = write_tier_report(indicator, run, out, fmt=file_format, previous=previous,
                                 runs_root=runs_root, min_count=min_count)
    else:
        if period is None:
            raise RiskUserError("--period is required (2024, 2024Q4 or 2024-11)")
        if over is not None and over not in GRAINS:
            raise RiskUserError(f"--over must be one of {', '.join(GRAINS)}")
        path = write_indicator_report(run, indicator, period, out, by=by, fmt=file_format,
                                      over=over, min_count=min_count, lang=lang)  # type: ignore[arg-type]
    typer.echo(f"wrote {path}")


@app.command()
@user_errors_are_clean
def overview(
    run: Annotated[Path, typer.Option(help="Run folder (risk nightly) or a risk validate output")],
    out: Annotated[Path, typer.Option(help="Output HTML file")],
    period: Annotated[str | None, typer.Option(help="2024Q4 etc. (default: quarter of as_of)")] = None,
    runs_root: Annotated[Path | None, typer.Option(help="Folder of runs for tier mix over time")] = None,
    min_count: Annotated[int | None, typer.Option(help="Hide cells about fewer people")] = None,
    no_capitation: Annotated[bool, typer.Option(help="Leave out the capitation (小包干) section")] = False,
    lang: Annotated[str, typer.Option(help="Page language: zh (default) or en")] = "zh",
) -> None:
    """County overview: indicators vs targets, township league table, trends, tier mix, capitation (HTML)."""
    must_exist(run, "run")
    from risk.indicators.overview import build_overview

    page = build_overview(run, out, period=period, runs_root=runs_root, min_count=min_count,
                          capitation=not no_capitation, lang=lang)
    typer.echo(f"wrote {page}")


rules_app = typer.Typer(help="Rule baseline: check a rule-set file, apply it to a features file.",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
@user_errors_are_clean
def rules_check(rules: RulesOption = None) -> None:
    """Validate a rule-set file (e.g. a county copy) and summarise it; errors name file, rule and problem."""
    from risk.tiers.rule_set import describe_rule_set, load_rule_set

    typer.echo(describe_rule_set(load_rule_set(rules)))


@rules_app.command("apply")
@user_errors_are_clean
def rules_apply(
    features: Annotated[Path, typer.Argument(help="features.parquet from `risk features`")],
    out: Annotated[Path, typer.Option(help="Output parquet: rule tiers, reasons, next due date")],
    rules: RulesOption = None,
) -> None:
    """Rule tiers for every row of a features file (the rule part of tiers.parquet)."""
    from risk.tiers.rules import apply_rules_to_file

    typer.echo(apply_rules_to_file(features, out, rules))


def parse_months(value: str) -> int:
    text = value.strip().upper().removesuffix("M")
    if not text.isdigit() or int(text) < 1:
        raise RiskUserError(f"'{value}' is not a number of months such as 3M")
    return int(text)


@app.command()
@user_errors_are_clean
def train(
    input_dir: Annotated[Path | None, typer.Argument(help="Validated output folder")] = None,
    as_of: Annotated[str | None, typer.Option(help="Test snapshot (default: latest complete)")] = None,
    snapshots: Annotated[int | None, typer.Option(help="Training snapshots (default: policy)")] = None,
    every: Annotated[str | None, typer.Option(help="Spacing of snapshots, e.g. 3M")] = None,
    table: Annotated[Path | None, typer.Option(help="Any per-person table (Parquet/CSV) instead")] = None,
    label: Annotated[str | None, typer.Option(help="Binary outcome column of --table")] = None,
    id_column: Annotated[str, typer.Option(help="Person id column of --table")] = "person_id",
    out: Annotated[Path, typer.Option(help="Output folder for the report")] = Path("runs/train"),
    export: Annotated[Path | None, typer.Option(help="Export the chosen model here (e.g. models)")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
    track: Annotated[bool, typer.Option(help="Log the run to MLflow")] = True,
    data_description: Annotated[str | None, typer.Option(help="How the data was made (model card)")] = None,
    external: Annotated[Path | None, typer.Option(help="Other validated county (external)")] = None,
) -> None:
    """Train calibrated LR + gradient boosting, evaluate them against the rules, report, log to MLflow."""
    from pipelines.train import train_county, train_table

    if table is not None:
        if input_dir is not None:
            raise RiskUserError("give either INPUT_DIR or --table, not both")
        if not label:
            raise RiskUserError("--table needs --label COLUMN (the binary outcome column)")
        result = train_table(table, label, out, id_column=id_column, export_dir=export,
                             tracking_uri=tracking_uri, track=track)
    else:
        if input_dir is None:
            raise RiskUserError("give INPUT_DIR (a validated output folder) or --table FILE --label COLUMN")
        result = train_county(
            input_dir, out, as_of=parse_date(as_of) if as_of else None, snapshots=snapshots,
            every_months=parse_months(every) if every else None, export_dir=export,
            tracking_uri=tracking_uri, track=track, data_description=data_description,
            external_dir=external,
        )
    typer.echo(result.render())


@app.command("evaluate-tiers")
@user_errors_are_clean
def evaluate_tiers(
    input_dir: Annotated[Path, typer.Argument(help="Validated output folder (or its canonical/)")],
    as_of: Annotated[str, typer.Option(help="Tiering date; its 12-month outcome must be in the data")],
    out: Annotated[Path, typer.Option(help="Output folder for tier_judgement.md/.csv/.json")] = Path(
        "runs/tier-judgement"
    ),
    rules: Annotated[Path | None, typer.Option(help="Rule set YAML (default: the embedded rules)")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Exported model (default: the approved one)")] = None,
    model: Annotated[bool, typer.Option(help="Judge the model and combined tiers too")] = True,
    features: Annotated[Path | None, typer.Option(help="Features parquet as of the date")] = None,
) -> None:
    """Judge the tiers against the outcome: event rate by tier per subgroup, events caught at capacity."""
    from pipelines.evaluate_tiers import evaluate_tiers as run

    result = run(input_dir, parse_date(as_of), out, rules=rules, model_dir=model_dir, use_model=model,
                 features_path=features)
    typer.echo(result.render())


@app.command()
@user_errors_are_clean
def docs(out: Annotated[Path, typer.Option(help="docs folder")] = Path("docs")) -> None:
    """Regenerate the documents that are written from definitions (data contract, feature catalogue)."""
    from risk.docs import write_generated_docs

    for path in write_generated_docs(out):
        typer.echo(f"wrote {path}")


# Chinese help and one example for every command (shown under the English description in --help).
HELP: dict[str, tuple[str, str]] = {
    "synth": ("生成与公开数据校准的合成县数据（符合输入数据规范）。",
              "risk synth --persons 20000 --seed 1 --out county/"),
    "validate": ("校验输入文件夹：生成规范表和隔离记录（含原因代码），各表行数可核对。",
                 "risk validate county/ --out validated/"),
    "features": ("按截止日期计算每位在管患者的特征（不使用截止日之后的数据）。",
                 "risk features validated/ --as-of 2024-12-31 --out f.parquet"),
    "nightly": ("每晚任务：校验 → 特征 → 分级 → 名单 → 运行报告；打印的名单默认中文。",
                "risk nightly county/ --as-of 2024-12-31 --out runs/2024-12-31"),
    "backfill": ("按过去的月末或季末补跑每晚任务，用于分级构成和变化趋势。",
                 "risk backfill county/ --start 2023-01-01 --end 2024-12-31 --runs-root runs/"),
    "demo": ("一条命令跑通演示：合成县、两次季度运行和县域概览。", "risk demo --out runs/demo"),
    "evaluate-tiers": ("用结局检验红黄绿分级：各层事件率（按性别、年龄段、乡镇）及按团队能力能覆盖的事件。",
                       "risk evaluate-tiers validated/ --as-of 2023-12-31 --out runs/tier-judgement"),
    "calls": ("给村医的外呼名单（calls.csv、可打印工作簿、入户随访任务）。",
              "risk calls runs/2024-12-31 --date 2025-01-06 --out calls/"),
    "results import": ("导入村医填好的外呼名单或外呼平台导出的结果。",
                       "risk results import calls_filled.xlsx --store risk.db"),
    "publish": ("把一次运行发布到查询数据库（原子切换，读者不会看到一半）。",
                "risk publish runs/2024-12-31 --store sqlite:///risk.db"),
    "runs list": ("列出查询数据库中已发布的运行（最新在前，* 为当前读者看到的运行）。",
                  "risk runs list --store sqlite:///risk.db"),
    "runs current": ("显示当前运行，或把读者切换到指定的已发布运行。",
                     "risk runs current 2024-12-31-6703134f2bb6 --store sqlite:///risk.db"),
    "serve": ("启动查询服务和网页（接口文档在 /api/docs）。", "risk serve --store sqlite:///risk.db"),
    "users add": ("新建用户并设置或重置网页登录密码。",
                  "risk users add doctor1 --role village_doctor --team TM001 --store risk.db --password"),
    "users revoke": ("立即停用一个用户。", "risk users revoke doctor1 --store risk.db"),
    "import fhir": ("把 HL7 FHIR 数据导入为输入表。", "risk import fhir bundles.tar.gz --out synthea/"),
    "report": ("导出一个指标（中文表头；--lang en 为英文字段名），含置信区间和小格隐藏；"
               "capitation 为小包干预算与支出（--year），call_cascade 为随访外呼进展。",
               "risk report bp_control_cn --run runs/2024-12-31 --period 2024Q4 --format xlsx --out r.xlsx"),
    "overview": ("县域概览网页（默认中文，--lang en 为英文），可打印为 A4。",
                 "risk overview --run runs/2024-12-31 --out overview.html"),
    "rules check": ("检查分级规则文件（如县里修改的副本）并汇总。",
                    "risk rules check --rules my-county.yaml"),
    "rules apply": ("对特征文件逐行计算规则分级。",
                    "risk rules apply f.parquet --out rule_tiers.parquet"),
    "train": ("训练并评估风险模型，与规则比较。",
              "risk train validated/ --as-of 2023-12-31 --export models/"),
    "docs": ("根据定义文件重新生成文档。", "risk docs"),
}


def _add_bilingual_help() -> None:
    import inspect

    groups = [("", app)] + [(g.name + " ", g.typer_instance) for g in app.registered_groups]
    for prefix, group in groups:
        for command in group.registered_commands:
            name = prefix + (command.name or command.callback.__name__.replace("_", "-"))
            if name not in HELP or command.callback is None:
                continue
            zh, example = HELP[name]
            english = inspect.cleandoc(command.help or command.callback.__doc__ or "")
            command.help = f"{english}\n\n{zh}\n\nExample / 示例:  {example}"


_add_bilingual_help()


if __name__ == "__main__":
    app()
