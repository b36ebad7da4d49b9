"""The command line as a user meets it: help for every command, errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from releasectl.cli import COMMANDS


def test_top_level_help_lists_every_command(cli):
    result = cli("--help")
    assert result.code == 0
    for name in COMMANDS:
        assert name in result.stdout
    assert "Exit codes" in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_json_output(cli, name):
    result = cli(name, "--help")
    assert result.code == 0, result.output
    assert "Usage: releasectl " + name in result.stdout
    assert "Traceback" not in result.output
    import click

    from releasectl.cli import LazyGroup

    command = LazyGroup().get_command(click.Context(click.Command("releasectl")), name)
    if isinstance(command, click.Group):  # a group: every subcommand takes --format
        subs = command.list_commands(click.Context(command))
        assert subs and all(sub in result.stdout for sub in subs)
        for sub in subs:
            sub_help = cli(name, sub, "--help")
            assert sub_help.code == 0 and "--format" in sub_help.stdout, (
                f"`releasectl {name} {sub}` lacks --format"
            )
    else:
        assert "--format" in result.stdout, f"`releasectl {name}` lacks --format json"


def test_unknown_command_and_bad_option_exit_2(cli):
    assert cli("rolback").code == 2
    result = cli("validate", "--no-such-flag", "x.yaml")
    assert result.code == 2
    assert "Traceback" not in result.output


def test_console_script_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "releasectl", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "releasectl" in proc.stdout
