"""The `chronos` group: `--version`, help listing the server's commands, the server's commands
reached through the click group."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from chronos_cli.main import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"chronos, version {version('chronos')}\n"


def test_help_lists_the_server_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("serve", "keys", "secrets", "migrate"):
        assert f"  {name} " in result.output


def test_serve_help_shows_the_servers_own_flags() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--database-url", "--workers", "--log-level"):
        assert flag in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output
