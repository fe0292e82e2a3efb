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
