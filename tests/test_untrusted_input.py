"""Counties we did not make (issue 12, part A): a hand-written county, odd headers and IDs, files and
sheets that could collide. Each test reproduces a finding that crashed or misled before its fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from risk import definitions
from risk.cli import app
from risk.models.export import approved_models_dir
from tests.support.hand_county import AS_OF, nine_person_county, write_county

pytestmark = pytest.mark.filterwarnings("ignore:RISK_ID_KEY")

ARROW = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def nightly(folder: Path, out: Path, *extra: str, model: bool = False, as_of: str = AS_OF):
    """`risk nightly` on a hand-made county; rules only unless `model` (9 persons cannot be compared with
    the model's training population: that refusal has its own tests)."""
    args = ["nightly", str(folder), "--as-of", as_of, "--out", str(out), *extra]
    return CliRunner().invoke(app, args if model else [*args, "--no-model"])


def refusal_warnings(manifest: dict) -> list[str]:
    """run.json warnings other than the development ID key's (these tests run without RISK_ID_KEY; the
    run record lists that state as a warning too)."""
    from risk.privacy import DEV_KEY_WARNING

    return [w for w in manifest["warnings"] if w != DEV_KEY_WARNING]


def assert_clean_run(result, out: Path) -> dict:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


def listed_persons(run: Path, folder: str) -> list[str]:
    from risk.products.lists import LIST_COLUMNS

    # team CSVs are headed in Chinese (docs/lists.md); village and unit CSVs keep the machine names
    column = LIST_COLUMNS["person_id"][0] if folder == "teams" else "person_id"
    ids: list[str] = []
    for path in sorted((run / "lists" / folder).glob("*.csv")):
        ids += pd.read_csv(path, dtype=str, encoding="utf-8-sig")[column].tolist()
    return ids


def assert_everyone_listed_once(run: Path) -> None:
    tiered = pd.read_parquet(run / "tiers.parquet", columns=["person_id"])["person_id"].tolist()
    for folder in ("teams", "villages", "units"):
        listed = listed_persons(run, folder)
        assert sorted(listed) == sorted(tiered), folder


@pytest.mark.slow  # a whole nightly run
def test_nine_person_csv_county_runs_with_an_unmanaged_candidate_without_claims(tmp_path: Path):
    """pandas 3: the all-NA Int64 claims count was concatenated with str in _evidence_text."""
    folder = write_county(nine_person_county(), tmp_path / "in")
    manifest = assert_clean_run(nightly(folder, tmp_path / "run"), tmp_path / "run")
    assert manifest["counts"]["unmanaged"] == 1
    unmanaged = pd.read_csv(
        tmp_path / "run" / "lists" / "unmanaged_key_population.csv", dtype=str, encoding="utf-8-sig"
    )
    assert unmanaged["person_id"].tolist() == ["P8"]
    assert unmanaged["evidence_en"].tolist() == ["raised BP on 2 days (max SBP 162, last 2024-07-02)"]
    assert_everyone_listed_once(tmp_path / "run")


@pytest.mark.slow  # a whole nightly run
@pytest.mark.parametrize(
    "table", ["vitals", "labs", "conditions", "follow_ups", "encounters", "prescriptions"]
)
def test_typed_empty_parquet_tables_run(tmp_path: Path, table: str):
    tables = nine_person_county()
    del tables[table]
    folder = write_county(tables, tmp_path / "in")
    spec = definitions.contract().tables[table]
    pq.write_table(
        pa.table({c: pa.array([], type=ARROW[col.type]) for c, col in spec.columns.items()}),
        folder / f"{table}.parquet",
    )
    allow = [] if table in ("encounters", "prescriptions") else ["--allow-empty", table]
    manifest = assert_clean_run(nightly(folder, tmp_path / "run", *allow), tmp_path / "run")
    assert manifest["validation"][table]["read"] == 0


@pytest.mark.slow  # a whole nightly run
def test_an_empty_parquet_table_written_by_pandas_has_null_typed_columns_and_runs(tmp_path: Path):
    """pandas writes an empty object column as Arrow type null: no value, so no wrong type either."""
    tables = nine_person_county()
    del tables["labs"]
    folder = write_county(tables, tmp_path / "in")
    spec = definitions.contract().tables["labs"]
    pd.DataFrame({c: pd.Series(dtype=object) for c in spec.columns}).to_parquet(folder / "labs.parquet")
    assert_clean_run(nightly(folder, tmp_path / "run", "--allow-empty", "labs"), tmp_path / "run")


@pytest.mark.slow  # a whole nightly run
def test_a_header_with_sex_and_SEX_is_one_clear_error(tmp_path: Path):
    tables = nine_person_county()
    tables["persons"]["SEX"] = tables["persons"]["sex"]
    result = nightly(write_county(tables, tmp_path / "in"), tmp_path / "run")
    assert result.exit_code == 2
    assert "'sex' and 'SEX'" in result.output and "Traceback" not in result.output


@pytest.mark.slow  # a whole nightly run
def test_extra_columns_differing_only_in_case_are_ignored(tmp_path: Path):
    tables = nine_person_county()
    tables["persons"]["note"] = "a"
    tables["persons"]["NOTE"] = "b"
    assert_clean_run(nightly(write_county(tables, tmp_path / "in"), tmp_path / "run"), tmp_path / "run")


@pytest.mark.slow  # a whole nightly run
def test_village_ids_equal_in_their_first_31_characters_get_distinct_sheets(tmp_path: Path):
    from openpyxl import load_workbook

    tables = nine_person_county()
    tables["persons"]["village_id"] = ["V" * 31 + str(i % 2) for i in range(9)]
    tables["persons"]["team_id"] = "TM1"
    folder = write_county(tables, tmp_path / "in")
    assert_clean_run(nightly(folder, tmp_path / "run"), tmp_path / "run")
    (book_path,) = (tmp_path / "run" / "lists" / "xlsx").glob("*.xlsx")
    sheets = load_workbook(book_path, read_only=True).sheetnames
    assert len(sheets) == 2 and len({s.lower() for s in sheets}) == 2
    assert all(len(s) <= 31 for s in sheets)


@pytest.mark.slow  # a whole nightly run
def test_team_ids_that_slug_alike_get_different_files_and_everyone_is_listed_once(tmp_path: Path):
    tables = nine_person_county()
    tables["persons"]["team_id"] = ["TM/X", "TM_X", "TM/X", "TM_X", "TM/X", "TM_X", "TM/X", "TM_X", "tm_x"]
    tables["persons"]["village_id"] = ["V/1", "V_1", "V 1", "V/1", "V_1", "V 1", "V/1", "V_1", "v_1"]
    folder = write_county(tables, tmp_path / "in")
    manifest = assert_clean_run(nightly(folder, tmp_path / "run"), tmp_path / "run")
    lists = tmp_path / "run" / "lists"
    on_disk = [p for p in lists.rglob("*") if p.is_file() and p.suffix in (".csv", ".xlsx")]
    assert manifest["counts"]["list_files"] == len(on_disk)
    tiered_teams = {"TM/X", "TM_X", "tm_x"} & set(
        pd.read_parquet(tmp_path / "run" / "features.parquet", columns=["team_id"])["team_id"]
    )
    assert len(list((lists / "teams").glob("*.csv"))) == len(tiered_teams)
    assert len({p.name.lower() for p in (lists / "teams").glob("*.csv")}) == len(tiered_teams)
    assert_everyone_listed_once(tmp_path / "run")


def test_sheet_names_are_unique_short_and_case_insensitive():
    from risk.products.lists import file_stem, sheet_names

    villages = ["V" * 40 + "a", "V" * 40 + "b", "History", "ab", "AB", "村/一", "村_一", "x" * 31]
    names = sheet_names(villages)
    assert len({n.lower() for n in names.values()}) == len(villages)
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\'") for n in names.values())
    assert names["x" * 31] == "x" * 31  # a plain, unique, short ID is kept as it is
    assert file_stem("TM/X") != file_stem("TM_X")
    assert file_stem("TM1").lower() != file_stem("tm1").lower()


def test_lone_surrogate_in_a_search_body_is_4xx_not_500(tmp_path: Path):
    from datetime import date

    from fastapi.testclient import TestClient

    from risk.serving.api import create_app
    from risk.serving.auth import add_user
    from risk.serving.demo import write_demo_run
    from risk.serving.publish import publish_run
    from risk.serving.store import open_store

    run = write_demo_run(tmp_path / "r1", persons=40, seed=1, as_of=date(2024, 12, 31), run_id="r1")
    url = str(tmp_path / "store.db")
    publish_run(run, url)
    token = add_user(open_store(url), "admin", "county_admin")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with TestClient(create_app(url), raise_server_exceptions=False) as client:
        for body in (b'{"q": "\\ud800"}', b'{"q": "ab\\udc00cd"}', b'{"q": "\xed\xa0\x80"}'):
            response = client.post("/api/search", content=body, headers=headers)
            assert 400 <= response.status_code < 500, (body, response.status_code)
            assert "ud800" not in response.text.lower()
        # a validation error never echoes what was searched (a name)
        response = client.post("/api/search", json={"q": "张" * 65}, headers=headers)
        assert response.status_code == 422 and "张" not in response.text


# --- dangerous input is refused (exit 2, one line) unless a flag says otherwise, then recorded ------------


def assert_refused(result, *phrases: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


def assert_warned(out: Path, phrase: str) -> None:
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert any(phrase in w for w in manifest["warnings"]), manifest["warnings"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Warnings" in summary and phrase in summary


@pytest.mark.slow  # a whole nightly run
def test_an_empty_persons_table_is_refused_unless_allowed(tmp_path: Path):
    tables = nine_person_county()
    tables["persons"] = tables["persons"].iloc[0:0]
    folder = write_county(tables, tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run"), "table 'persons' has no rows", "--allow-empty persons")
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(app, ["validate", str(folder), "--out", str(tmp_path / "v")])
    assert_refused(result, "table 'persons' has no rows")
    result = nightly(folder, tmp_path / "run", "--allow-empty", "persons")
    manifest = assert_clean_run(result, tmp_path / "run")
    assert manifest["counts"]["tiered"] == 0
    assert_warned(tmp_path / "run", "accepted by --allow-empty persons")


@pytest.mark.slow  # a whole nightly run
@pytest.mark.parametrize("table", ["vitals", "conditions", "follow_ups", "labs"])
def test_a_header_only_needed_table_is_refused_unless_allowed(tmp_path: Path, table: str):
    tables = nine_person_county()
    tables[table] = tables[table].iloc[0:0]
    folder = write_county(tables, tmp_path / "in")
    assert_refused(
        nightly(folder, tmp_path / "run"), f"table '{table}' has no rows", f"--allow-empty {table}"
    )
    assert_clean_run(nightly(folder, tmp_path / "run", "--allow-empty", table), tmp_path / "run")
    assert_warned(tmp_path / "run", f"--allow-empty {table}")


@pytest.mark.slow  # a whole nightly run
def test_a_table_whose_every_row_is_quarantined_counts_as_empty(tmp_path: Path):
    tables = nine_person_county()
    tables["vitals"]["sbp"] = 999
    folder = write_county(tables, tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run"), "table 'vitals' has no accepted row")


@pytest.mark.slow  # a whole nightly run
def test_a_missing_labs_table_is_refused_as_the_data_contract_says(tmp_path: Path):
    from risk.docs import data_contract_markdown

    tables = nine_person_county()
    del tables["labs"]
    folder = write_county(tables, tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run"), "table 'labs' is missing")
    assert_clean_run(nightly(folder, tmp_path / "run", "--allow-empty", "labs"), tmp_path / "run")
    assert_warned(tmp_path / "run", "table 'labs' is missing")
    # the document says the same as the code: labs is not among the tables that may be missing
    doc = data_contract_markdown()
    optional_line = next(line for line in doc.splitlines() if line.startswith("Tables that may be missing"))
    assert "`labs`" not in optional_line and "`encounters`" in optional_line
    for name in ("encounters", "prescriptions"):  # optional tables: absent is fine, no warning
        tables = nine_person_county()
        del tables[name]
        folder = write_county(tables, tmp_path / f"in-{name}")
        manifest = assert_clean_run(nightly(folder, tmp_path / f"run-{name}"), tmp_path / f"run-{name}")
        assert refusal_warnings(manifest) == []


@pytest.mark.slow  # a whole nightly run
def test_allow_empty_names_a_contract_table(tmp_path: Path):
    folder = write_county(nine_person_county(), tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run", "--allow-empty", "vital"), "not a contract table")


@pytest.mark.slow  # a whole nightly run
@pytest.mark.parametrize("as_of", ["2030-01-01", "2025-06-30"])
def test_an_as_of_long_after_the_data_or_after_today_is_refused_unless_allowed(tmp_path: Path, as_of: str):
    folder = write_county(nine_person_county(), tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run", as_of=as_of), "--allow-late-as-of")
    assert not (tmp_path / "run").exists()
    manifest = assert_clean_run(
        nightly(folder, tmp_path / "run", "--allow-late-as-of", as_of=as_of), tmp_path / "run"
    )
    assert manifest["as_of"] == as_of
    assert_warned(tmp_path / "run", "accepted by --allow-late-as-of")


@pytest.mark.slow  # a whole nightly run
def test_an_as_of_within_a_month_of_the_newest_event_runs_without_warning(tmp_path: Path):
    folder = write_county(nine_person_county(), tmp_path / "in")
    manifest = assert_clean_run(nightly(folder, tmp_path / "run", as_of="2025-01-20"), tmp_path / "run")
    assert refusal_warnings(manifest) == []


@pytest.mark.slow  # a whole nightly run
def test_the_committed_model_is_refused_on_a_county_it_cannot_be_compared_with(tmp_path: Path):
    folder = write_county(nine_person_county(), tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run", model=True), "--no-model", "--accept-model-drift")
    manifest = assert_clean_run(
        nightly(folder, tmp_path / "run", "--accept-model-drift", model=True), tmp_path / "run"
    )
    assert manifest["versions"]["model"] != "none"
    assert manifest["model_drift"]["rows"] == manifest["counts"]["tiered"]
    assert manifest["model_drift"]["psi"]
    assert_warned(tmp_path / "run", "--accept-model-drift")


# --- rule files -----------------------------------------------------------------------------------------


def _rule_file(tmp_path: Path, edit) -> Path:
    from tests.support.rules import default_rule_data, write_rule_file

    data = default_rule_data()
    edit(data)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_rule_file(tmp_path, data)


@pytest.mark.slow  # a whole nightly run
def test_rules_check_refuses_an_implausible_threshold(tmp_path: Path):
    def typo(data):
        data["name"], data["version"] = "county", "county-1"
        data["thresholds"]["sbp_target"]["value"] = 1400

    result = CliRunner().invoke(app, ["rules", "check", "--rules", str(_rule_file(tmp_path, typo))])
    assert_refused(result, "threshold 'sbp_target'", "1400", "plausible range [110.0, 160.0]")
    folder = write_county(nine_person_county(), tmp_path / "in")
    assert_refused(nightly(folder, tmp_path / "run", "--rules", str(tmp_path / "county.yaml")), "1400")


def test_every_packaged_threshold_declares_a_range_that_holds_its_value():
    from risk.tiers import load_rule_set

    for threshold in load_rule_set().thresholds.values():
        assert threshold.plausible is not None, threshold.name
        low, high = threshold.plausible
        assert low <= threshold.value <= high, threshold.name


def test_a_threshold_without_a_plausible_range_is_refused(tmp_path: Path):
    def bare(data):
        data["name"], data["version"] = "county", "county-1"
        del data["thresholds"]["fpg_target"]["plausible"]

    result = CliRunner().invoke(app, ["rules", "check", "--rules", str(_rule_file(tmp_path, bare))])
    assert_refused(result, "threshold 'fpg_target'", "plausible: [low, high]")


def test_an_edited_copy_keeping_the_packaged_name_and_version_is_refused(tmp_path: Path):
    def edited(data):
        data["thresholds"]["sbp_target"]["value"] = 135

    result = CliRunner().invoke(app, ["rules", "check", "--rules", str(_rule_file(tmp_path, edited))])
    assert_refused(result, "version 2.1.0 is the packaged rule set's", "its own name and version")
    # an unedited copy (same content, other layout) is the packaged rule set: accepted
    unedited = _rule_file(tmp_path / "same", lambda data: None)
    assert CliRunner().invoke(app, ["rules", "check", "--rules", str(unedited)]).exit_code == 0
    # renamed: accepted
    renamed = _rule_file(tmp_path / "renamed", lambda d: (edited(d), d.update(name="suixi", version="s-1")))
    assert CliRunner().invoke(app, ["rules", "check", "--rules", str(renamed)]).exit_code == 0


# --- the model and the population it was trained on -------------------------------------------------------


def test_the_run_records_the_drift_of_every_model_feature(small_run: Path):
    manifest = json.loads((small_run / "run.json").read_text(encoding="utf-8"))
    drift = manifest["model_drift"]
    model = json.loads(
        (approved_models_dir() / manifest["versions"]["model"] / "metadata.json").read_text(encoding="utf-8")
    )
    assert set(drift["psi"]) == set(model["feature_columns"])
    assert drift["rows"] == manifest["counts"]["tiered"] >= drift["min_rows"]
    assert drift["max_psi"] == max(drift["psi"].values())
    # the committed model was trained on the current generator's county: the default county resembles it
    # (the fixture does not accept drift), so nothing is refused and there is no drift warning
    assert drift["problem"] is None and drift["max_psi"] <= drift["psi_threshold"]
    assert not any("--accept-model-drift" in w for w in manifest["warnings"])


def _model_with_profile(tmp_path: Path, features: pd.DataFrame):
    """A copy of the committed model whose training profile is `features` (its own population)."""
    from pipelines.nightly import default_model_dir
    from risk.models.drift import PROFILE, training_profile
    from risk.tiers.model import load_exported_model

    folder = tmp_path / "model"
    shutil.copytree(default_model_dir(), folder)
    spec = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["feature_spec"]
    profile = training_profile(features, [*spec["numeric"], *spec["boolean"]], spec["categorical"])
    (folder / PROFILE).write_text(json.dumps(profile), encoding="utf-8")
    return load_exported_model(folder)


def test_a_population_unlike_the_training_one_is_refused_feature_by_feature(small_run: Path, tmp_path: Path):
    from risk.errors import RiskUserError
    from risk.models.policy import default_model_policy
    from risk.tiers.model import check_model_drift

    policy = default_model_policy()

    features = pd.read_parquet(small_run / "features.parquet")
    half = features["person_id"].rank(method="first") % 2 == 0
    model = _model_with_profile(tmp_path, features[half])
    same = check_model_drift(model, features[~half], policy)  # the other half of the same county
    assert same.problem is None  # ~220 rows a half: sampling noise alone reaches PSI ~0.17
    older = features.assign(age=features["age"] + 25, bp_last_sbp=features["bp_last_sbp"] + 40)
    with pytest.raises(RiskUserError, match=r"do not resemble .*(age|bp_last_sbp) .*--accept-model-drift"):
        check_model_drift(model, older, policy)
    report = check_model_drift(model, older, policy, accept=True)
    assert report.psi["age"] > 0.25 and report.psi["bp_last_sbp"] > 0.25
    assert report.psi["sex"] < 0.1  # untouched features stay close
    assert report.warnings and "--accept-model-drift" in report.warnings[0]
    # without a stored training profile the fit cannot be checked: refused too
    (model.path / "training_profile.json").unlink()
    with pytest.raises(RiskUserError, match="no training profile"):
        check_model_drift(model, features, policy)
