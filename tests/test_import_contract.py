"""Layers import one way only (docs/architecture.md): each module of risk/ and pipelines/ imports only its
own layer or layers below it; nothing in risk/ imports pipelines/; features/ never imports engines/.
Every import counts, including those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own layer and any layer listed before it.
LAYERS: list[set[str]] = [
    {"risk", "errors", "sql", "formatting", "stats", "privacy", "atomic", "spreadsheet", "workers"},
    {"definitions", "provenance", "docs"},
    {"run"},  # the run-folder contract: file names, manifest, canonical-table binding, history
    {"io", "validate", "interop"},
    {"features", "schema"},
    {"synth"},  # the synthetic county draws outcomes from the China-PAR equation of features/
    {"tiers", "models", "evaluation"},
    {"engines"},
    {"products", "calls", "indicators", "serving", "capitation"},
    {"pipelines"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _layer(module: str) -> str | None:
    """'risk.tiers.rules' -> 'tiers'; 'pipelines.nightly' -> 'pipelines'; others -> None."""
    parts = [part for part in module.split(".") if part != "__init__"]
    if parts[0] == "pipelines":
        return "pipelines"
    if parts[0] != "risk":
        return None
    return parts[1] if len(parts) > 1 else "risk"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "risk":  # from risk import definitions -> risk.definitions
                found += [(node.lineno, f"risk.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted([*(root / "risk").rglob("*.py"), *(root / "pipelines").rglob("*.py")]):
        relative = path.relative_to(root)
        source = _layer(".".join(relative.with_suffix("").parts))
        if source not in RANK:
            found.append(f"{relative}: module in no layer ({source})")
            continue
        for line, module in _imports(path):
            target = _layer(module)
            if target is None or target == source:
                continue
            if target not in RANK:
                found.append(f"{relative}:{line} imports {module}, which is in no layer")
            elif RANK[target] > RANK[source]:
                found.append(f"{relative}:{line} imports {module} ({target} is above {source})")
    return found


def test_layers_import_one_way_only():
    assert violations() == []


def test_the_contract_catches_an_upward_import(tmp_path: Path):
    for package, text in (
        ("risk/features", "from risk.engines.spark_features import x\n"),
        ("risk/engines", "import pipelines.nightly\n"),
        ("risk/models", "from risk import products\n"),
    ):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "bad.py").write_text(text, encoding="utf-8")
    (tmp_path / "pipelines").mkdir()
    found = violations(tmp_path)
    assert len(found) == 3, found
    assert any("features/bad.py:1 imports risk.engines" in v for v in found)
    assert any("engines/bad.py:1 imports pipelines.nightly" in v for v in found)


@pytest.mark.parametrize("layer", ["features", "tiers", "engines", "products"])
def test_every_named_layer_exists(layer: str):
    assert (ROOT / "risk" / layer).is_dir()


def test_declared_schemas_refuse_a_drifted_engine_output(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from risk.errors import RiskUserError
    from risk.schema import TIER_RANK, TIER_SCHEMA, TIERS, check_parquet, feature_schema

    assert [TIER_RANK[t] for t in TIERS] == [0, 1, 2] and TIERS[-1] == "red"
    good = TIER_SCHEMA.empty_table()
    pq.write_table(good, tmp_path / "tiers.parquet")
    check_parquet(tmp_path / "tiers.parquet", TIER_SCHEMA, "tiers")
    drifted = good.set_column(6, "days_overdue", pa.array([], type=pa.float64()))
    pq.write_table(drifted, tmp_path / "drifted.parquet")
    with pytest.raises(RiskUserError, match="days_overdue is double"):
        check_parquet(tmp_path / "drifted.parquet", TIER_SCHEMA, "tiers")
    pq.write_table(good.select(TIER_SCHEMA.names[::-1]), tmp_path / "reordered.parquet")
    check_parquet(tmp_path / "reordered.parquet", TIER_SCHEMA, "tiers")
    pq.write_table(good.drop_columns(["model_version"]), tmp_path / "short.parquet")
    with pytest.raises(RiskUserError, match="columns"):
        check_parquet(tmp_path / "short.parquet", TIER_SCHEMA, "tiers")
    assert feature_schema(["bp_last_sbp"]).names == ["person_id", "as_of", "bp_last_sbp"]
