"""The server's own `chronos` commands, as click commands that `chronos_cli` registers.

chronos serve [--host H] [--port P] [--database-url URL] [--workers N] [--log-level L]
              [--metrics-port P] [--log-format text|json] [--access-log]
chronos keys create [--database-url URL] [--account NAME] [--create-account]
                                                            (new key = last stdout line)
chronos keys list [--database-url URL]
chronos keys revoke KEY_OR_PREFIX [--database-url URL]
chronos secrets show [--database-url URL] [--account NAME]   (current secret = the only stdout line)
chronos secrets rotate [--database-url URL] [--account NAME] [--overlap 24h]
chronos migrate [--database-url URL]
chronos prune [--database-url URL] [--dry-run] [--retention SPEC]   (CHRONOS_RETENTION, 30d)

The server's flags live here, next to the server (`SERVE_OPTIONS`); the `chronos` group itself
(`--version`, the HTTP commands) is `chronos_cli.main`, which imports this module only when one
of these commands runs. A start-up failure is one line on stderr and an exit code
(`startup.py`), never a traceback. The admin commands read the database URL as `serve` does,
say on stderr which database they use, and never create a database or an account unasked
(`admin.py`).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import click
import trio

from chronos_server import prune, runtime, supervisor
from chronos_server.admin import (
    DEFAULT_OVERLAP_MS,
    OverlapError,
    keys_create,
    keys_list,
    keys_revoke,
    migrate_database,
    parse_overlap,
    print_rotate,
    print_show,
    say_database,
    secrets_rotate,
    secrets_show,
)
from chronos_server.api.auth import display_prefix
from chronos_server.api.timefmt import iso
from chronos_server.clock import SystemClock
from chronos_server.settings import Settings, parse_retention, settings_from
from chronos_server.startup import (
    check_database_directory,
    configure_logging,
    run_reporting_failures,
)
from chronos_server.telemetry.logs import configure_logging as configure_server_logging

__all__ = ["COMMANDS", "SERVE_OPTIONS", "SystemClock", "main", "parse_overlap", "serve_options"]

F = TypeVar("F", bound=Callable[..., Any])

LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]

DATABASE_URL_OPTION = click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="database (CHRONOS_DATABASE_URL, sqlite:///chronos.db)",
)

# `chronos serve`'s flags; a branch that adds a server flag adds it here.
SERVE_OPTIONS: list[Callable[[F], F]] = [
    click.option("--host", default=None, help="bind address (CHRONOS_HOST, 127.0.0.1)"),
    click.option("--port", type=int, default=None, help="port (CHRONOS_PORT, 8080)"),
    DATABASE_URL_OPTION,
    click.option(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port, PostgreSQL only (CHRONOS_WORKERS, 1)",
    ),
    click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=lambda: os.environ.get("CHRONOS_LOG_LEVEL", "INFO").upper(),
        show_default="CHRONOS_LOG_LEVEL or INFO",
        help="log level",
    ),
    click.option(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics at /metrics on this port, same host as the API "
        "(CHRONOS_METRICS_PORT; off by default); with --workers N, process i listens on "
        "this port + i",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        help="readable lines, or one JSON object per line (CHRONOS_LOG_FORMAT, text)",
    ),
    click.option(
        "--access-log",
        is_flag=True,
        default=None,
        help="one INFO line per HTTP request (CHRONOS_ACCESS_LOG=1)",
    ),
]


def serve_options(fn: F) -> F:
    for option in reversed(SERVE_OPTIONS):
        fn = option(fn)
    return fn


@click.command("serve")
@serve_options
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    workers: int | None,
    log_level: str,
    metrics_port: int | None,
    log_format: str | None,
    access_log: bool | None,
) -> None:
    """Run the API server and the pipeline loops."""
    configure_logging(log_level)

    def start() -> int:
        settings = settings_from(
            os.environ,
            host=host,
            port=port,
            database_url=database_url,
            workers=workers,
            metrics_port=metrics_port,
            log_format=log_format,
            access_log=access_log,
            log_level=log_level,
        )
        configure_server_logging(
            settings.log_level, settings.log_format, access_log=settings.access_log
        )
        check_database_directory(settings.database_url)
        if settings.workers > 1:
            return trio.run(supervisor.supervise, settings, settings.log_level)
        lifeline = os.environ.get(supervisor.LIFELINE_ENV)
        if lifeline is not None:  # one of the processes of `--workers`
            settings = replace(settings, reuse_port=True)
        runtime.raise_open_files_limit()
        trio.run(_serve_one, settings, int(lifeline) if lifeline else None)
        return 0

    code = run_reporting_failures(start, settings_hint=(host, port))
    if code:
        raise click.exceptions.Exit(code)


async def _serve_one(settings: Settings, lifeline: int | None) -> None:
    # Signals are caught from the first instant, not once the server is up: the port is bound
    # early in start-up (so `--workers`' supervisor, or a test, may already see it listening),
    # and a SIGTERM arriving before the handler was set killed the process outright instead of
    # stopping it gracefully. A signal received during start-up is acted on once it is up.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        await _serve_one_with(settings, lifeline, signals)


async def _serve_one_with(
    settings: Settings, lifeline: int | None, signals: AsyncIterator[int]
) -> None:
    async with trio.open_nursery() as nursery:

        async def run(*, task_status: trio.TaskStatus[runtime.ServerHandle]) -> None:
            await runtime.serve(settings, signals=signals, gc_tuning=True, task_status=task_status)
            nursery.cancel_scope.cancel()  # stopped: nothing else here to wait for

        handle = await nursery.start(run)
        if handle.shown_api_key:
            print(runtime.shown_key_line(handle.shown_api_key))
            sys.stdout.flush()
        if lifeline is not None:
            nursery.start_soon(supervisor.stop_when_supervisor_exits, lifeline, handle.stop)


def _database_url(arg: str | None) -> str:
    """The database, exactly as `serve` reads it: the flag, then CHRONOS_DATABASE_URL."""
    url = settings_from(os.environ, database_url=arg).database_url
    check_database_directory(url)
    say_database(url)
    return url


def _run_admin(fn: Callable[[], int | None]) -> None:
    configure_logging("WARNING")
    code = run_reporting_failures(lambda: fn() or 0)
    if code:
        raise click.exceptions.Exit(code)


@click.group("keys")
def keys() -> None:
    """Manage API keys (directly in the database)."""


@keys.command("create")
@DATABASE_URL_OPTION
@click.option("--account", default=runtime.DEFAULT_ACCOUNT, show_default=True)
@click.option("--create-account", is_flag=True, help="create the account if it does not exist yet")
def keys_create_command(database_url: str | None, account: str, create_account: bool) -> None:
    """Create a key for an existing account (or a new one, with --create-account); the key is
    the last line of stdout."""

    def run() -> None:
        url = _database_url(database_url)
        key = trio.run(
            functools.partial(keys_create, create_account=create_account),
            url,
            account,
            SystemClock(),
        )
        print(
            f"Created an API key for account {account!r} (display prefix {display_prefix(key)}, "
            "which `chronos keys revoke` accepts; shown once):"
        )
        print(key)

    _run_admin(run)


@keys.command("list")
@DATABASE_URL_OPTION
def keys_list_command(database_url: str | None) -> None:
    """Every key: its display prefix, account, creation and last use (UTC)."""

    def run() -> None:
        found = trio.run(keys_list, _database_url(database_url))
        rows = [["PREFIX", "ACCOUNT", "CREATED", "LAST USED", "REVOKED"]]
        for k in found:
            rows.append(
                [
                    k.prefix,
                    k.account,
                    iso(k.created_at) or "-",
                    iso(k.last_used_at) or "never",
                    iso(k.revoked_at) or "-",
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())

    _run_admin(run)


@keys.command("revoke")
@click.argument("key")
@DATABASE_URL_OPTION
def keys_revoke_command(key: str, database_url: str | None) -> None:
    """Revoke a key by its value or display prefix."""

    def run() -> int:
        count = trio.run(keys_revoke, _database_url(database_url), key, SystemClock())
        print(f"Revoked {count} key(s)")
        return 0 if count else 4

    _run_admin(run)


def _overlap(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_overlap(value)
    except OverlapError as exc:
        raise click.BadParameter(str(exc)) from exc


ACCOUNT_OPTION = click.option("--account", default=runtime.DEFAULT_ACCOUNT, show_default=True)
OVERLAP_HELP = (
    "how long the previous secret keeps signing deliveries next to the new one, as N followed "
    "by s, m, h or d (at most 30d; 0 switches at once) [24h]"
)


@click.group("secrets")
def secrets() -> None:
    """Show or rotate an account's push signing secret."""


@secrets.command("show")
@DATABASE_URL_OPTION
@ACCOUNT_OPTION
@click.option("--overlap", callback=_overlap, hidden=True)
def secrets_show_command(database_url: str | None, account: str, overlap: int | None) -> None:
    """Print the current secret (the only stdout line)."""
    if overlap is not None:
        raise click.UsageError("--overlap applies to `secrets rotate` only")

    def run() -> None:
        report = trio.run(secrets_show, _database_url(database_url), account, SystemClock())
        print_show(account, report)

    _run_admin(run)


@secrets.command("rotate")
@DATABASE_URL_OPTION
@ACCOUNT_OPTION
@click.option("--overlap", callback=_overlap, metavar="DURATION", help=OVERLAP_HELP)
def secrets_rotate_command(database_url: str | None, account: str, overlap: int | None) -> None:
    """Make a new signing secret; the new secret is the last line of stdout."""
    overlap_ms = DEFAULT_OVERLAP_MS if overlap is None else overlap

    def run() -> None:
        url = _database_url(database_url)
        report = trio.run(secrets_rotate, url, account, overlap_ms, SystemClock())
        print_rotate(account, report)

    _run_admin(run)


@click.command("migrate")
@DATABASE_URL_OPTION
def migrate(database_url: str | None) -> None:
    """Apply pending schema migrations and exit."""

    def run() -> None:
        trio.run(migrate_database, _database_url(database_url))
        print("Migrations applied")

    _run_admin(run)


@click.command("prune")
@DATABASE_URL_OPTION
@click.option("--dry-run", is_flag=True, help="only count what would be deleted")
@click.option(
    "--retention",
    default=None,
    metavar="SPEC",
    help="e.g. 30d, off, 30d,failed=90d (CHRONOS_RETENTION, 30d)",
)
def prune_command(database_url: str | None, dry_run: bool, retention: str | None) -> None:
    """Delete finished jobs and ended schedules past the retention period, now."""

    def run() -> None:
        rule = parse_retention(retention or os.environ.get("CHRONOS_RETENTION", "30d"))
        if not rule.enabled:
            print("Retention is off: nothing to prune")
            return
        url = _database_url(database_url)
        done = trio.run(lambda: prune.prune(url, rule, dry_run=dry_run, clock=SystemClock()))
        print(prune.report(done, rule, dry_run=dry_run))

    _run_admin(run)


COMMANDS: dict[str, click.Command] = {
    "serve": serve,
    "keys": keys,
    "secrets": secrets,
    "migrate": migrate,
    "prune": prune_command,
}


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m chronos_server` and the tests: the whole `chronos` command."""
    from chronos_cli.main import main as chronos_main

    chronos_main(argv)
