"""Privacy against someone who holds the outputs (issue 12): the masked national ID cannot be rebuilt with
the birth date and region code beside it; nothing is hashed, published or served without the county key
unless the development key is asked for (and recorded); no personal value in any error, log or traceback."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from risk import privacy
from risk.cli import app
from tests.support.hostile_county import AS_OF, KNOWN_ID, personal_values_in, run_cli, write_hostile_county

GB11643_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
GB11643_CHECK = "10X98765432"


def _valid(candidate: str) -> bool:
    total = sum(int(d) * w for d, w in zip(candidate[:17], GB11643_WEIGHTS, strict=True))
    return GB11643_CHECK[total % 11] == candidate[17]


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hostile_county(tmp_path_factory.mktemp("hostile") / "input")


@pytest.fixture(scope="module")
def run(county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    done = run_cli(
        "--dev-id-key",
        "nightly",
        str(county),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(out),
        "--no-model",
        "--no-xlsx",
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.delenv(privacy.DEV_KEY_ENV, raising=False)
    privacy._key.cache_clear()
    yield
    privacy._key.cache_clear()


def test_masked_id_cannot_be_rebuilt_from_birth_date_and_region_code(county: Path, run: Path) -> None:
    clear = pd.read_parquet(county / "persons.parquet", columns=["person_id", "national_id"])
    out = pd.read_parquet(
        run / "canonical" / "persons.parquet", columns=["person_id", "birth_date", "national_id_masked"]
    )
    people = out.merge(clear, on="person_id")
    people = people[people["national_id"].str.len().eq(18) & people["national_id"].map(_valid)]
    assert len(people) > 200
    regions = sorted({value[:6] for value in clear["national_id"].dropna()})  # the attacker knows them all
    rebuilt, fewest = 0, None
    for row in people.itertuples():
        birth = pd.Timestamp(row.birth_date).strftime("%Y%m%d")
        shown = row.national_id_masked.lstrip("*")  # what the mask keeps, at the end
        hidden = 18 - 14 - len(shown)  # sequence characters neither the mask nor the birth date give
        candidates = [
            candidate
            for region in regions
            for sequence in range(10**hidden)
            if _valid(candidate := f"{region}{birth}{sequence:0{hidden}d}{shown}")
            and privacy.mask_national_id(candidate) == row.national_id_masked
        ]
        assert row.national_id in candidates  # the attack is sound: the true ID is among them
        rebuilt += len(candidates) == 1
        fewest = len(candidates) if fewest is None else min(fewest, len(candidates))
    assert rebuilt == 0
    assert fewest >= 9


def test_without_a_key_nothing_is_hashed_published_or_served(
    no_key, county: Path, run: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    for args in (
        ["validate", str(county), "--out", str(tmp_path / "v")],
        ["nightly", str(county), "--as-of", AS_OF.isoformat(), "--out", str(tmp_path / "r"), "--no-model"],
        ["publish", str(run), "--store", str(tmp_path / "s.db")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "RISK_ID_KEY is not set" in result.output
        assert "--dev-id-key" in result.output
    assert not any((tmp_path / name).exists() for name in ("v", "r", "s.db"))


def test_serving_without_a_key_is_refused(no_key, run: Path, tmp_path: Path, monkeypatch) -> None:
    from risk.serving.api import create_app
    from risk.serving.publish import publish_run

    store = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.setenv(privacy.DEV_KEY_ENV, "1")
    publish_run(run, store)
    monkeypatch.delenv(privacy.DEV_KEY_ENV)
    privacy._key.cache_clear()
    with pytest.raises(privacy.MissingIdKeyError):
        create_app(store)


def test_the_development_key_is_explicit_and_recorded(
    run: Path, no_key, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert manifest["versions"]["id_key"] == "development"
    assert "development key" in (run / "summary.md").read_text(encoding="utf-8")
    # a run hashed with the development key is not published under a county key without the flag
    monkeypatch.setenv(privacy.KEY_ENV, "county-secret")
    result = CliRunner().invoke(app, ["publish", str(run), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "development key" in result.output
    monkeypatch.delenv(privacy.KEY_ENV)
    privacy._key.cache_clear()
    result = CliRunner().invoke(app, ["--dev-id-key", "publish", str(run), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output


def test_an_unbalanced_quote_in_a_persons_csv_echoes_no_record(county: Path, tmp_path: Path) -> None:
    folder = write_hostile_county(tmp_path / "csv", file_format="csv")
    path = folder / "persons.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if KNOWN_ID in line) - 1  # the record before it
    name = next(csv.DictReader([lines[0], lines[index]]))["name"]
    lines[index] = lines[index].replace(f'"{name}"', f'"{name}', 1)  # a quote opens and never closes
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_cli("--dev-id-key", "validate", str(folder), "--out", str(tmp_path / "v"))
    assert done.returncode == 2, done.stderr
    assert "persons.csv" in done.stderr and "line" in done.stderr.lower()
    assert personal_values_in(done.stdout + done.stderr) == []


@pytest.mark.slow
def test_a_database_error_during_publish_shows_no_row_values(county: Path, run: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    first = run_cli("--dev-id-key", "publish", str(run), "--store", str(store))
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(store) as con:  # the store now refuses patient rows: the next load fails
        con.execute("DELETE FROM serving_runs")  # the run as if never published (its history too)
        con.execute("DELETE FROM serving_tier_history")
        con.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON serving_patients "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
    done = run_cli("--dev-id-key", "publish", str(run), "--store", str(store))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "refused by test" in done.stderr
    assert personal_values_in(done.stdout + done.stderr) == []
    # the same through the nightly's --store, with its log lines
    nightly = run_cli(
        "--dev-id-key",
        "nightly",
        str(county),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(tmp_path / "r"),
        "--no-model",
        "--no-xlsx",
        "--store",
        str(store),
    )
    assert nightly.returncode == 2, nightly.stderr
    assert "Traceback" not in nightly.stderr
    assert personal_values_in(nightly.stdout + nightly.stderr) == []
