"""How `risk validate` reads each table (risk/validate/run.py): one pass with the checks writes the accepted
rows; only the rows whose key repeats and the rows that failed a check are read again. These tests pin the
results that design must keep: duplicates among passing rows only, file order of the accepted rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from risk.validate import validate_folder
from tests.support.validate_inputs import AS_OF, good_tables, write_folder


@pytest.fixture(autouse=True)
def _id_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "test-key")


def test_duplicate_is_judged_among_passing_rows_only(tmp_path: Path) -> None:
    """The first row of a key fails a check; the next one with that key is accepted, the one after that is
    its duplicate (not the failing row's)."""
    tables = good_tables()
    first = tables["vitals"].iloc[0].to_dict()
    extra = [first | {"sbp": "900"}, first | {"sbp": "141"}, first | {"sbp": "142"}]
    tables["vitals"] = pd.concat([tables["vitals"].iloc[1:], pd.DataFrame(extra)], ignore_index=True)
    n = len(tables["vitals"])  # rows n-2 (fails), n-1 (accepted), n (duplicate of n-1)
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine[["table", "source_row", "reason_code", "detail"]].values.tolist() == [
        ["vitals", n - 2, "out_of_range", "sbp=900 outside 50-300 mmHg"],
        ["vitals", n, "duplicate", f"same key as row {n - 1}"],
    ]
    vitals = pd.read_parquet(tmp_path / "out" / "canonical" / "vitals.parquet")
    assert vitals["source_row"].tolist() == [*range(1, n - 2), n - 1] and vitals["sbp"].iloc[-1] == 141


def test_table_smaller_than_persons_keeps_file_order(tmp_path: Path) -> None:
    """The accepted rows pass through a join with the accepted persons; a table with fewer rows than
    persons must still come out in file order, not in the persons' order."""
    tables = good_tables()
    template = tables["persons"].iloc[0].to_dict() | {"national_id": ""}
    tables["persons"] = pd.DataFrame([template | {"person_id": f"P{i:03d}"} for i in range(1, 201)])
    ids = [f"P{i:03d}" for i in range(200, 0, -7)]  # persons' order reversed
    tables["conditions"] = pd.DataFrame(
        {
            "person_id": ids,
            "condition": "hypertension",
            "diagnosed_on": "2015-01-01",
            "enrolled_on": "2015-02-01",
        }
    )
    for name in ("vitals", "labs", "follow_ups", "encounters", "prescriptions"):
        tables[name] = tables[name].assign(person_id="P001")
    tables["encounters"] = tables["encounters"].head(1)
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    conditions = pd.read_parquet(tmp_path / "out" / "canonical" / "conditions.parquet")
    assert conditions["person_id"].tolist() == ids
    assert conditions["source_row"].tolist() == list(range(1, len(ids) + 1))


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 50_000])
def test_repeated_hashes_are_those_occurring_more_than_once(n: int) -> None:
    from risk.validate.run import _repeated

    rng = np.random.default_rng(n)
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    hashes[::3] = rng.integers(
        2**64 - 1 - max(n // 10, 1), 2**64 - 1, len(hashes[::3]), dtype=np.uint64, endpoint=True
    )  # repeats, up to the largest hash
    rows = rng.permutation(np.arange(1, n + 1, dtype=np.int64))
    values, counts = np.unique(hashes, return_counts=True)
    expected = rows[np.isin(hashes, values[counts > 1])]
    assert np.array_equal(np.sort(rows[np.isin(hashes, _repeated(hashes))]), np.sort(expected))
    assert len(np.unique(_repeated(hashes))) == len(_repeated(hashes)) == (counts > 1).sum()


class _CountingConnection:
    """A DuckDB connection that notes every statement it runs."""

    def __init__(self, con, statements: list[str]) -> None:  # type: ignore[no-untyped-def]
        self._con, self._statements = con, statements

    def execute(self, sql: str, *args):  # type: ignore[no-untyped-def]
        self._statements.append(sql)
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._con, name)


def test_a_table_with_duplicates_and_failing_rows_is_read_three_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key pass, one pass with the checks (failing rows and duplicate candidates together) and the
    copy: not a separate re-read for the candidates and another for the failing rows. The accepted
    persons are read back from the written file (three columns), not kept as a table of typed rows."""
    import risk.validate.run as run

    tables = good_tables()
    first = tables["vitals"].iloc[0].to_dict()
    tables["vitals"] = pd.concat(
        [tables["vitals"], pd.DataFrame([first, first | {"sbp": "900"}])], ignore_index=True
    )
    folder = write_folder(tmp_path / "in", tables)
    statements: dict[str, list[str]] = {}
    validate_table = run._validate_table

    def counting(con, plan, source, target):  # type: ignore[no-untyped-def]
        log = statements.setdefault(plan.spec.name, [])
        return validate_table(_CountingConnection(con, log), plan, source, target)

    monkeypatch.setattr(run, "_validate_table", counting)
    validate_folder(folder, tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert sorted(quarantine.loc[quarantine["table"] == "vitals", "reason_code"]) == [
        "duplicate",
        "out_of_range",
    ]
    vitals_file = str(next(folder.glob("vitals.*")))
    reads = [sql for sql in statements["vitals"] if vitals_file in sql]
    assert len(reads) == 3, reads
    assert not [sql for sql in statements["persons"] if sql.startswith("CREATE TEMP TABLE persons_accepted")]
