"""`chronos-tui`: check the server and the key, then run the dashboard.

    chronos-tui [--server URL] [--api-key KEY] [--refresh SECONDS] [--utc]

`--server` falls back to `CHRONOS_BASE_URL`, then `http://127.0.0.1:8080`; `--api-key` to
`CHRONOS_API_KEY`. Before the screen is taken over, one authenticated request proves the server
answers and accepts the key, so a typo ends with one line on stderr, not a broken full-screen UI.

Exit codes (as `chronos-worker`): 0 quit normally; 2 bad arguments, no key, server unreachable or
not answering like Chronos; 3 API key refused (401/403); 130 interrupted during the check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC
from typing import NoReturn

from chronos_tui.api import APIError, AuthRefused, ChronosAPI, ServerUnreachable

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chronos-tui", description="Terminal dashboard for a Chronos server."
    )
    parser.add_argument("--server", help=f"base URL (env CHRONOS_BASE_URL; {DEFAULT_BASE_URL})")
    parser.add_argument("--api-key", help="API key chrns_… (env CHRONOS_API_KEY)")
    parser.add_argument(
        "--refresh", type=float, default=1.0, metavar="SECONDS", help="refresh period (1)"
    )
    parser.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    return parser


def run_cli(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on bad arguments
    server = (args.server or os.environ.get("CHRONOS_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    api_key = args.api_key or os.environ.get("CHRONOS_API_KEY") or ""
    if not api_key:
        return fail("no API key: pass --api-key or set CHRONOS_API_KEY", EXIT_USAGE)
    if not 0.1 <= args.refresh <= 60:
        return fail("--refresh must be between 0.1 and 60 seconds", EXIT_USAGE)
    try:
        asyncio.run(check_server(server, api_key))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except AuthRefused as exc:
        return fail(f"{server}: {exc}", EXIT_AUTH)
    except ServerUnreachable as exc:
        return fail(f"{exc} (is `chronos serve` running there?)", EXIT_USAGE)
    except APIError as exc:
        return fail(f"{server} does not answer like a Chronos server: {exc}", EXIT_USAGE)

    from chronos_tui.app import ChronosApp  # Textual loads only once the server is known good

    app = ChronosApp(
        ChronosAPI(server, api_key), refresh_seconds=args.refresh, tz=UTC if args.utc else None
    )
    app.run()
    return app.return_code or EXIT_OK


async def check_server(server: str, api_key: str) -> None:
    """One authenticated request; raises the `APIError` that says what is wrong."""
    api = ChronosAPI(server, api_key, timeout=5.0)
    try:
        await api.check()
    finally:
        await api.aclose()


def fail(message: str, code: int) -> int:
    print(f"chronos-tui: {message}", file=sys.stderr)
    return code
