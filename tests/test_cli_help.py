"""The command line as a county IT person meets it: help in Chinese and English with an example for every
command, a version, and an immediate clear error for a missing path (before the heavy imports)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import risk
from risk.cli import HELP, app

runner = CliRunner()
CJK = re.compile(r"[\u4e00-\u9fff]")


def _commands() -> list[list[str]]:
    names = [[c.name or c.callback.__name__.replace("_", "-")] for c in app.registered_commands]
    for group in app.registered_groups:
        commands = group.typer_instance.registered_commands
        names += [[group.name, c.name or c.callback.__name__] for c in commands]
    return names


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_has_chinese_and_english_help_with_an_example(command: list[str]) -> None:
    assert " ".join(command) in HELP
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example / 示例:" in result.output and "risk " + command[0] in result.output
    assert CJK.search(result.output) and re.search(r"[A-Za-z]{4,} [a-z]{3,}", result.output)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"risk {risk.__version__}"


def test_missing_path_fails_before_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from risk.cli import app\n"
        "for args in (['validate', '/nonexistent'], ['nightly', '/nonexistent', '--as-of', '2024-12-31', "
        "'--out', '/tmp/x'], ['overview', '--run', '/nonexistent', '--out', '/tmp/x.html']):\n"
        "    r = CliRunner().invoke(app, args + (['--out', '/tmp/x'] if args[0] == 'validate' else []))\n"
        "    print(r.exit_code, r.output.strip().splitlines()[-1])\n"
        "print(sorted(m for m in ('duckdb', 'pandas', 'pyarrow', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert all(line.startswith("2 error: /nonexistent") for line in lines[:3]), out
    assert lines[3] == "[]", out  # nothing heavy was imported to say the folder is missing
