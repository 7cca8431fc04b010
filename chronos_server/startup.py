"""Start-up failures as one line on stderr and an exit code, never a traceback.

Trio wraps what fails inside a nursery in an ExceptionGroup; the operator needs the one leaf that
says what to fix (port in use, database unreachable, bad URL, missing directory, bad setting).
Exit codes: 2 a value to fix (setting, URL, directory), 1 the port is taken or cannot be bound,
4 no such database or account (admin commands), 7 the database cannot be reached, 130
interrupted. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from chronos_server.errors import StoreUnavailable
from chronos_server.settings import SettingsError

EXIT_SETTING = 2
EXIT_BIND = 1
EXIT_DATABASE = 7
EXIT_INTERRUPTED = 130


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def check_database_directory(database_url: str) -> None:
    """A SQLite file in a directory that does not exist: say so, rather than SQLite's
    "unable to open database file"."""
    if not database_url.startswith("sqlite:"):
        return
    from chronos_server.store.sqlite import sqlite_path

    path = sqlite_path(database_url)
    if path == ":memory:":
        return
    parent = Path(path).parent
    if not parent.is_dir():
        raise SettingsError(
            f"the directory of the database file {path!r} does not exist: create {str(parent)!r}"
            " or fix --database-url / CHRONOS_DATABASE_URL"
        )


class Refusal(Exception):
    """An admin command that will not do what was asked (no such database or account), with
    the exit code to leave with (4: not found)."""

    def __init__(self, message: str, exit_code: int = 4) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(exc: BaseException, bind: tuple[str | None, int | None]) -> tuple[int, str] | None:
    """(exit code, the one line) for a failure an operator can fix; None for a bug."""
    if isinstance(exc, Refusal):
        return exc.exit_code, str(exc)
    if isinstance(exc, SettingsError):
        return EXIT_SETTING, str(exc)
    if isinstance(exc, StoreUnavailable):
        return EXIT_DATABASE, f"the database is unreachable: {exc.message}"
    if isinstance(exc, socket.gaierror):
        return EXIT_SETTING, f"cannot resolve the bind address {bind[0]!r}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        where = f"{bind[0] or '127.0.0.1'}:{bind[1] if bind[1] is not None else 8080}"
        return EXIT_BIND, (
            f"cannot listen on {where}: the address is already in use"
            " (another server running? choose another --port / CHRONOS_PORT)"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return EXIT_BIND, f"cannot listen on {bind[0]}:{bind[1]}: {exc.strerror}"
    if type(exc).__module__.startswith("psycopg"):  # a malformed PostgreSQL URL
        return EXIT_SETTING, f"bad PostgreSQL database URL: {exc}"
    if isinstance(exc, ValueError) and "database URL" in str(exc):
        return EXIT_SETTING, str(exc)
    return None


def run_reporting_failures(
    start: Callable[[], int], *, settings_hint: tuple[str | None, int | None] = (None, None)
) -> int:
    """Run `start`; a known failure becomes one line on stderr and its exit code."""
    try:
        return start()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BaseException as exc:
        for leaf in leaves(exc):
            if isinstance(leaf, KeyboardInterrupt):
                return EXIT_INTERRUPTED
            found = describe(leaf, settings_hint)
            if found is not None:
                code, line = found
                print("chronos: " + " ".join(line.split()), file=sys.stderr)
                return code
        raise
