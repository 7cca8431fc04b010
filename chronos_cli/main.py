"""`chronos` (entry point `chronos_cli.main:main`): the click group and the process exit code.

Commands of the server are registered lazily by name (`SERVER_COMMANDS`): `chronos_server.cli`
is imported only when one of them runs (or `--help` lists them), so the HTTP commands start fast
and work where only the SDK is installed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import click

from chronos_cli.commands import COMMANDS
from chronos_cli.support import CommandFailed

# name → short help, for `chronos --help` without importing the server
SERVER_COMMANDS = {
    "serve": "Run the API server and the pipeline loops.",
    "keys": "Manage API keys (directly in the database).",
    "secrets": "Show or rotate an account's push signing secret.",
    "migrate": "Apply pending schema migrations and exit.",
    "prune": "Delete finished jobs and ended schedules past the retention period, now.",
}
SERVER_MISSING = (
    "`chronos {name}` needs the server's dependencies: pip install 'chronos[server]' ({error})"
)


def package_version() -> str:
    try:
        return version("chronos")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


class ChronosGroup(click.Group):
    """The top-level group: its own subcommands, plus the server's, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *SERVER_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SERVER_COMMANDS:
            return super().get_command(ctx, cmd_name)
        try:
            server_cli = importlib.import_module("chronos_server.cli")
        except ImportError as exc:
            return _missing_server(cmd_name, exc)
        command: click.Command = server_cli.COMMANDS[cmd_name]
        return command


def _missing_server(name: str, exc: ImportError) -> click.Command:
    @click.command(
        name, help=SERVER_COMMANDS[name], context_settings={"ignore_unknown_options": True}
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def missing(args: tuple[str, ...]) -> None:
        raise CommandFailed(SERVER_MISSING.format(name=name, error=exc), 1)

    return missing


@click.group(cls=ChronosGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", "-V", prog_name="chronos")
def cli() -> None:
    """Chronos job scheduler: run the server, and operate any Chronos server over HTTP."""


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run `chronos`; exits non-zero on failure (returns on success, for callers and tests)."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="chronos",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
