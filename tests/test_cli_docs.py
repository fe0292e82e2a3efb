"""Every subcommand has help with an example and is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_cli_subcommand_has_help_with_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_cli_subcommand_is_in_readme(name):
    assert f"clickstream {name}" in README


def test_cli_unknown_option_is_a_clean_error():
    result = CliRunner().invoke(cli, ["up", "--bogus"])
    assert result.exit_code == 2 and "No such option" in result.output


def _make_targets() -> list[str]:
    import re

    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    return re.findall(r"^([a-z-]+):.*## ", makefile, re.M)


@pytest.mark.parametrize("target", _make_targets())
def test_make_target_is_in_readme(target):
    assert f"| `make {target}" in README or (target == "help" and "`make help`" in README)


def test_cli_command_table_matches_each_modules_commands():
    import importlib

    from services.cli import COMMAND_MODULES

    for module, names in COMMAND_MODULES.items():
        declared = tuple(c.name for c in importlib.import_module(module).COMMANDS)
        assert declared == names, module


def test_cli_simulate_imports_only_its_own_module():
    # the start-up of `clickstream simulate` skips the other services' imports (Kafka,
    # settings, Spark, the dashboard): a fresh interpreter, then what it loaded
    import subprocess
    import sys

    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from services.cli import cli\n"
            "r = CliRunner().invoke(cli, ['simulate', '--events', '3', '--workers', '1'])\n"
            "assert r.exit_code == 0 and r.output.count(chr(10)) == 3, r.output\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('kafka', 'pydantic_settings', 'pyspark', 'panel', 'bokeh', 'polars') "
            "or m.startswith('services.') and not m.startswith('services.simulator'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.split() == ["services.cli"]
