"""The HTTP commands of `chronos` (the hosted product's CLI, spec §17.2 / G-44), plus
`chronos help exit-codes` and `chronos completion bash|zsh|fish`. None imports the server."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from chronos_cli.executions import executions
from chronos_cli.handlers import handlers
from chronos_cli.jobs import jobs
from chronos_cli.schedules import schedules
from chronos_cli.support import EXIT_CODES


@click.group("help")
def help_() -> None:
    """Reference pages: `chronos help exit-codes`."""


@help_.command("exit-codes")
def exit_codes() -> None:
    """The exit codes of every `chronos` command (G-44)."""
    for code, meaning in EXIT_CODES:
        click.echo(f"{code}  {meaning}")


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    bash: `eval "$(chronos completion bash)"`; zsh: `eval "$(chronos completion zsh)"`;
    fish: `chronos completion fish | source`."""
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root.command, {}, "chronos", "_CHRONOS_COMPLETE").source())


COMMANDS: list[click.Command] = [schedules, jobs, executions, handlers, help_, completion]
