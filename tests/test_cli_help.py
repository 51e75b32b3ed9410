"""Every ``fairgate`` help screen reads whole at 80 columns (no cut names, no <bool>)."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from cli.main import app

COMMAND = typer.main.get_command(app)
NAMES = ["", *COMMAND.commands]  # type: ignore[attr-defined]


def render_help(name: str) -> str:
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, prog_name="fairgate")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n or "fairgate")
def test_help_fits_80_columns_without_cuts(name):
    text = render_help(name)
    for line in text.splitlines():
        assert len(line) <= 80, line
        if not line.startswith("Usage:"):  # "[ARGS]..." there is Click's notation
            assert not line.rstrip().endswith(("...", "…")), line
    assert "<bool>" not in text


@pytest.mark.parametrize("name", [n for n in NAMES if n])
def test_every_option_is_shown_whole_and_flags_as_pairs(name):
    text = render_help(name)
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        if not isinstance(param, TyperOption):
            continue
        for opt in param.opts:
            assert opt in text, f"{name}: {opt} missing or cut"
        if param.secondary_opts:  # a boolean: --flag / --no-flag on one line
            pair = f"{param.opts[0]} / {param.secondary_opts[0]}"
            assert pair in text, f"{name}: {pair} not shown"


def test_the_boolean_flags_are_the_ones_expected():
    flags = {
        name: sorted(
            p.opts[0]
            for p in COMMAND.commands[name].params  # type: ignore[attr-defined]
            if isinstance(p, TyperOption) and p.secondary_opts
        )
        for name in COMMAND.commands  # type: ignore[attr-defined]
    }
    assert flags["train"] == ["--include-sensitive"]
    assert flags["serve"] == ["--train-if-missing"]
    assert flags["probe"] == ["--once"]
