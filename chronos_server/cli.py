"""`chronos` command: argv/env → Settings → trio.run(runtime.serve); plus key administration.

chronos serve [--host H] [--port P] [--database-url URL] [--workers N]
chronos keys create [--database-url URL] [--account NAME]   (new key = last stdout line)
chronos keys revoke KEY_OR_PREFIX [--database-url URL]
chronos secrets show [--database-url URL] [--account NAME]   (current secret = the only stdout line)
chronos secrets rotate [--database-url URL] [--account NAME] [--overlap 24h]
chronos migrate [--database-url URL]
chronos prune [--database-url URL] [--dry-run] [--retention SPEC]   (CHRONOS_RETENTION, 30d)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import trio

from chronos_server import prune, runtime, supervisor
from chronos_server.api.auth import display_prefix, hash_key, new_api_key
from chronos_server.api.timefmt import iso
from chronos_server.clock import SystemClock
from chronos_server.errors import StoreUnavailable
from chronos_server.settings import (
    DEFAULT_DATABASE_URL,
    Settings,
    SettingsError,
    parse_retention,
    settings_from,
)
from chronos_server.store.base import SigningSecrets
from chronos_server.store.open import open_store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chronos", description="Chronos job scheduler")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server and the pipeline loops")
    serve.add_argument("--host", default=None, help="bind address (CHRONOS_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (CHRONOS_PORT, 8080)")
    serve.add_argument("--database-url", default=None, help="CHRONOS_DATABASE_URL")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port, PostgreSQL only (CHRONOS_WORKERS, 1)",
    )
    serve.add_argument("--log-level", default=os.environ.get("CHRONOS_LOG_LEVEL", "INFO"))

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create a key (and the account if needed)")
    create.add_argument("--database-url", default=None)
    create.add_argument("--account", default=runtime.DEFAULT_ACCOUNT)
    revoke = keys.add_parser("revoke", help="revoke a key by its value or display prefix")
    revoke.add_argument("key")
    revoke.add_argument("--database-url", default=None)

    secrets = sub.add_parser("secrets", help="show or rotate an account's push signing secret")
    secrets.add_argument("action", choices=["show", "rotate"])
    secrets.add_argument("--database-url", default=None)
    secrets.add_argument("--account", default=runtime.DEFAULT_ACCOUNT)
    secrets.add_argument(
        "--overlap",
        type=parse_overlap,
        default=None,
        help="rotate only: how long the previous secret keeps signing deliveries next to the "
        "new one, as N followed by s, m, h or d (at most 30d; 0 switches at once) [24h]",
    )

    migrate = sub.add_parser("migrate", help="apply pending schema migrations and exit")
    migrate.add_argument("--database-url", default=None)

    pruning = sub.add_parser(
        "prune", help="delete finished jobs and ended schedules past the retention period, now"
    )
    pruning.add_argument("--database-url", default=None)
    pruning.add_argument("--dry-run", action="store_true", help="only count what would go")
    pruning.add_argument(
        "--retention",
        default=None,
        help="e.g. 30d, off, 30d,failed=90d (CHRONOS_RETENTION, 30d)",
    )
    return parser


def _database_url(arg: str | None) -> str:
    return arg or os.environ.get("CHRONOS_DATABASE_URL", DEFAULT_DATABASE_URL)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from(
        os.environ,
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        workers=args.workers,
    )
    if settings.workers > 1:
        return trio.run(supervisor.supervise, settings, args.log_level)
    lifeline = os.environ.get(supervisor.LIFELINE_ENV)
    if lifeline is not None:  # one of the processes of `--workers`
        settings = replace(settings, reuse_port=True)
    runtime.raise_open_files_limit()
    trio.run(_serve_one, settings, int(lifeline) if lifeline else None)
    return 0


async def _serve_one(settings: Settings, lifeline: int | None) -> None:
    async with trio.open_nursery() as nursery:

        async def run(*, task_status: trio.TaskStatus[runtime.ServerHandle]) -> None:
            await runtime.serve(
                settings, handle_signals=True, gc_tuning=True, task_status=task_status
            )
            nursery.cancel_scope.cancel()  # stopped: nothing else here to wait for

        handle = await nursery.start(run)
        if handle.shown_api_key:
            print(f"Created the default account. API key (shown once): {handle.shown_api_key}")
            sys.stdout.flush()
        if lifeline is not None:
            nursery.start_soon(supervisor.stop_when_supervisor_exits, lifeline, handle.stop)


async def _keys_create(database_url: str, account_name: str) -> str:
    async with open_store(database_url) as store:
        now = SystemClock().now_ms()
        account, created = await store.ensure_account(account_name, now)
        if created or account.signing_secret is None:
            await store.set_signing_secret(account.id, runtime.new_signing_secret())
        key = new_api_key()
        await store.add_api_key(account.id, hash_key(key), display_prefix(key), now)
        return key


async def _keys_revoke(database_url: str, key: str) -> int:
    async with open_store(database_url) as store:
        target = hash_key(key) if len(key) > len(display_prefix(key)) else key
        return await store.revoke_api_key(target, SystemClock().now_ms())


DEFAULT_OVERLAP_MS = 24 * 3_600_000
MAX_OVERLAP_MS = 30 * 86_400_000
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_OVERLAP = re.compile(r"([0-9]{1,9})([smhd])")


def parse_overlap(text: str) -> int:
    """`--overlap`: `30m`, `24h`, `7d`... (or `0`) → milliseconds."""
    if text.strip() == "0":
        return 0
    found = _OVERLAP.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a whole number followed by s, m, h or d (e.g. 24h)"
        )
    ms = int(found.group(1)) * _UNIT_MS[found.group(2)]
    if ms > MAX_OVERLAP_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than the maximum, 30d")
    return ms


def _span(ms: int) -> str:
    """`45s`, `12m 05s`, `47h 59m`, `6d 23h`: how far away an overlap's end is, for people."""
    seconds = max(0, ms) // 1000
    if seconds >= 2 * 86_400:
        days, rest = divmod(seconds, 86_400)
        return f"{days}d {rest // 3600}h"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


@dataclass(frozen=True)
class SecretsReport:
    """What `chronos secrets` found (and did), with the instant it did it, for printing."""

    now: int
    secrets: SigningSecrets
    cut_short: SigningSecrets | None = None  # rotate: an overlap in progress that was ended


async def _secrets_show(database_url: str, account_name: str) -> SecretsReport:
    async with open_store(database_url) as store:
        now = SystemClock().now_ms()
        account, _ = await store.ensure_account(account_name, now)
        if account.signing_secret is None:
            await store.set_signing_secret(account.id, runtime.new_signing_secret())
        await store.drop_expired_signing_secrets(now)  # the lazy clean-up of ended overlaps
        found = await store.get_signing_secrets(account.id)
        assert found is not None
        return SecretsReport(now, found)


async def _secrets_rotate(database_url: str, account_name: str, overlap_ms: int) -> SecretsReport:
    async with open_store(database_url) as store:
        now = SystemClock().now_ms()
        account, _ = await store.ensure_account(account_name, now)
        before = await store.get_signing_secrets(account.id)
        until = now + overlap_ms if overlap_ms > 0 else None
        rotated = await store.rotate_signing_secret(
            account.id, runtime.new_signing_secret(), previous_until=until
        )
        assert rotated is not None
        cut_short = before if before and before.rotating_until(now) is not None else None
        return SecretsReport(now, rotated, cut_short)


def _print_show(account: str, report: SecretsReport) -> None:
    print(report.secrets.current)
    until = report.secrets.rotating_until(report.now)
    if until is not None:  # stderr: stdout stays the current secret alone, for scripts
        print(
            f"Rotation in progress for account {account!r}: the previous secret still signs "
            f"deliveries next to this one until {iso(until)} (in {_span(until - report.now)}):\n"
            f"{report.secrets.previous}",
            file=sys.stderr,
        )


def _print_rotate(account: str, report: SecretsReport) -> None:
    if report.cut_short is not None and report.cut_short.previous_until is not None:
        print(
            f"chronos: the secret before the last rotation was to be sent until "
            f"{iso(report.cut_short.previous_until)}; it is no longer sent",
            file=sys.stderr,
        )
    until = report.secrets.rotating_until(report.now)
    if until is None:
        print(f"Rotated the signing secret of account {account!r}; deliveries sent")
        print("from now on are signed with:")
    else:
        print(f"Rotated the signing secret of account {account!r}. Until {iso(until)}")
        print(f"(in {_span(until - report.now)}) deliveries carry signatures by both the previous")
        print("secret and the new one, then by the new one only. New secret:")
    print(report.secrets.current)


async def _migrate(database_url: str) -> None:
    async with open_store(database_url):
        pass


def _prune(args: argparse.Namespace) -> None:
    text = args.retention or os.environ.get("CHRONOS_RETENTION", "30d")
    retention = parse_retention(text)
    if not retention.enabled:
        print("Retention is off: nothing to prune")
        return
    database_url = _database_url(args.database_url)
    done = trio.run(
        lambda: prune.prune(database_url, retention, dry_run=args.dry_run, clock=SystemClock())
    )
    print(prune.report(done, retention, dry_run=args.dry_run))


def _secrets(args: argparse.Namespace) -> None:
    database_url = _database_url(args.database_url)
    if args.action == "show":
        if args.overlap is not None:
            raise ValueError("--overlap applies to `secrets rotate` only")
        _print_show(args.account, trio.run(_secrets_show, database_url, args.account))
    else:
        overlap = DEFAULT_OVERLAP_MS if args.overlap is None else args.overlap
        report = trio.run(_secrets_rotate, database_url, args.account, overlap)
        _print_rotate(args.account, report)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            sys.exit(_serve(args))
        elif args.command == "keys" and args.action == "create":
            key = trio.run(_keys_create, _database_url(args.database_url), args.account)
            print(f"Created an API key for account {args.account!r}:")
            print(key)
        elif args.command == "keys" and args.action == "revoke":
            count = trio.run(_keys_revoke, _database_url(args.database_url), args.key)
            print(f"Revoked {count} key(s)")
            sys.exit(0 if count else 4)
        elif args.command == "secrets":
            _secrets(args)
        elif args.command == "migrate":
            trio.run(_migrate, _database_url(args.database_url))
            print("Migrations applied")
        elif args.command == "prune":
            _prune(args)
    except (SettingsError, ValueError) as exc:
        print(f"chronos: {exc}", file=sys.stderr)
        sys.exit(2)
    except StoreUnavailable as exc:  # e.g. PostgreSQL unreachable at start-up
        print(f"chronos: {exc.message}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
