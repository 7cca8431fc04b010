"""`chronos` command: argv/env → Settings → trio.run(runtime.serve); plus key administration.

chronos serve [--host H] [--port P] [--database-url URL] [--workers N]
chronos keys create [--database-url URL] [--account NAME]   (new key = last stdout line)
chronos keys revoke KEY_OR_PREFIX [--database-url URL]
chronos migrate [--database-url URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

import trio

from chronos_server import runtime, supervisor
from chronos_server.api.auth import display_prefix, hash_key, new_api_key
from chronos_server.clock import SystemClock
from chronos_server.errors import StoreUnavailable
from chronos_server.settings import (
    DEFAULT_DATABASE_URL,
    Settings,
    SettingsError,
    settings_from,
)
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

    migrate = sub.add_parser("migrate", help="apply pending schema migrations and exit")
    migrate.add_argument("--database-url", default=None)
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


async def _secret(database_url: str, account_name: str, rotate: bool) -> str | None:
    async with open_store(database_url) as store:
        account, _ = await store.ensure_account(account_name, SystemClock().now_ms())
        secret = account.signing_secret
        if rotate or secret is None:
            secret = runtime.new_signing_secret()
            await store.set_signing_secret(account.id, secret)
        return secret


async def _migrate(database_url: str) -> None:
    async with open_store(database_url):
        pass


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
            rotate = args.action == "rotate"
            secret = trio.run(_secret, _database_url(args.database_url), args.account, rotate)
            if rotate:
                print(f"Rotated the signing secret of account {args.account!r}; deliveries sent")
                print("from now on are signed with:")
            print(secret)
        elif args.command == "migrate":
            trio.run(_migrate, _database_url(args.database_url))
            print("Migrations applied")
    except (SettingsError, ValueError) as exc:
        print(f"chronos: {exc}", file=sys.stderr)
        sys.exit(2)
    except StoreUnavailable as exc:  # e.g. PostgreSQL unreachable at start-up
        print(f"chronos: {exc.message}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
