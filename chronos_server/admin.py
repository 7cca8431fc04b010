"""What the admin commands (`chronos keys|secrets|migrate`) do to the database, and print.

The click layer is `cli.py`; here are the store calls and the text, so both stay testable
without a command line. The clock is passed in (tests set it).

They cannot surprise: only `migrate` (and `serve`) may create a database; `keys` and `secrets`
refuse a SQLite file that does not exist, and an account that does not exist (except
`keys create --create-account`), with exit code 4 and a message saying what to do.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from chronos_server import runtime
from chronos_server.api.auth import display_prefix, hash_key, new_api_key
from chronos_server.api.timefmt import iso
from chronos_server.core.models import Account
from chronos_server.startup import Refusal
from chronos_server.store.base import ApiKeyInfo, SigningSecrets, Store
from chronos_server.store.open import open_store
from chronos_server.store.sqlite import sqlite_path


class MsClock(Protocol):
    def now_ms(self) -> int: ...


DEFAULT_OVERLAP_MS = 24 * 3_600_000
MAX_OVERLAP_MS = 30 * 86_400_000
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_OVERLAP = re.compile(r"([0-9]{1,9})([smhd])")


class OverlapError(ValueError):
    pass


def parse_overlap(text: str) -> int:
    """`--overlap`: `30m`, `24h`, `7d`... (or `0`) → milliseconds."""
    if text.strip() == "0":
        return 0
    found = _OVERLAP.fullmatch(text.strip())
    if found is None:
        raise OverlapError(
            f"{text!r} is not a duration: a whole number followed by s, m, h or d (e.g. 24h)"
        )
    ms = int(found.group(1)) * _UNIT_MS[found.group(2)]
    if ms > MAX_OVERLAP_MS:
        raise OverlapError(f"{text!r} is longer than the maximum, 30d")
    return ms


def span(ms: int) -> str:
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


def shown_url(database_url: str) -> str:
    """The database URL for people: a password is masked; a SQLite file gets its full path."""
    if database_url.startswith("sqlite:"):
        path = sqlite_path(database_url)
        return database_url if path == ":memory:" else f"sqlite:///{Path(path).resolve()}"
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def say_database(database_url: str) -> None:
    """On stderr, so stdout stays the key or the secret alone, for scripts."""
    print(f"chronos: database {shown_url(database_url)}", file=sys.stderr)


def require_database(database_url: str) -> None:
    """Refuse a SQLite file that is not there: opening it would create it, empty, and a key or
    secret made there is of no use to the server."""
    if not database_url.startswith("sqlite:"):
        return
    path = sqlite_path(database_url)
    if path != ":memory:" and not Path(path).exists():
        raise Refusal(
            f"no database at {shown_url(database_url)}: give the server's --database-url "
            "(or CHRONOS_DATABASE_URL), or create it with `chronos migrate`"
        )


@asynccontextmanager
async def open_existing_store(database_url: str) -> AsyncIterator[Store]:
    """The store of a database that exists already (see `require_database`)."""
    require_database(database_url)
    async with open_store(database_url) as store:
        yield store


async def existing_account(store: Store, name: str) -> Account:
    found = await store.get_account_by_name(name)
    if found is None:
        raise Refusal(
            f"no account named {name!r} in this database (`chronos keys list` shows the "
            "accounts that have keys; `chronos keys create --account NAME --create-account` "
            "makes one)"
        )
    return found


async def keys_create(
    database_url: str, account_name: str, clock: MsClock, *, create_account: bool = False
) -> str:
    async with open_existing_store(database_url) as store:
        now = clock.now_ms()
        if create_account:
            account, created = await store.ensure_account(account_name, now)
        else:
            account, created = await existing_account(store, account_name), False
        if created or account.signing_secret is None:
            await store.set_signing_secret(account.id, runtime.new_signing_secret())
        key = new_api_key()
        await store.add_api_key(account.id, hash_key(key), display_prefix(key), now)
        return key


async def keys_list(database_url: str) -> list[ApiKeyInfo]:
    async with open_existing_store(database_url) as store:
        return await store.list_api_keys()


async def keys_revoke(database_url: str, key: str, clock: MsClock) -> int:
    async with open_existing_store(database_url) as store:
        target = hash_key(key) if len(key) > len(display_prefix(key)) else key
        return await store.revoke_api_key(target, clock.now_ms())


@dataclass(frozen=True)
class SecretsReport:
    """What `chronos secrets` found (and did), with the instant it did it, for printing."""

    now: int
    secrets: SigningSecrets
    cut_short: SigningSecrets | None = None  # rotate: an overlap in progress that was ended


async def secrets_show(database_url: str, account_name: str, clock: MsClock) -> SecretsReport:
    async with open_existing_store(database_url) as store:
        now = clock.now_ms()
        account = await existing_account(store, account_name)
        if account.signing_secret is None:
            await store.set_signing_secret(account.id, runtime.new_signing_secret())
        await store.drop_expired_signing_secrets(now)  # the lazy clean-up of ended overlaps
        found = await store.get_signing_secrets(account.id)
        assert found is not None
        return SecretsReport(now, found)


async def secrets_rotate(
    database_url: str, account_name: str, overlap_ms: int, clock: MsClock
) -> SecretsReport:
    async with open_existing_store(database_url) as store:
        now = clock.now_ms()
        account = await existing_account(store, account_name)
        before = await store.get_signing_secrets(account.id)
        until = now + overlap_ms if overlap_ms > 0 else None
        rotated = await store.rotate_signing_secret(
            account.id, runtime.new_signing_secret(), previous_until=until
        )
        assert rotated is not None
        cut_short = before if before and before.rotating_until(now) is not None else None
        return SecretsReport(now, rotated, cut_short)


async def migrate_database(database_url: str) -> None:
    async with open_store(database_url):
        pass


def print_show(account: str, report: SecretsReport) -> None:
    print(report.secrets.current)
    until = report.secrets.rotating_until(report.now)
    if until is not None:  # stderr: stdout stays the current secret alone, for scripts
        print(
            f"Rotation in progress for account {account!r}: the previous secret still signs "
            f"deliveries next to this one until {iso(until)} (in {span(until - report.now)}):\n"
            f"{report.secrets.previous}",
            file=sys.stderr,
        )


def print_rotate(account: str, report: SecretsReport) -> None:
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
        print(f"(in {span(until - report.now)}) deliveries carry signatures by both the previous")
        print("secret and the new one, then by the new one only. New secret:")
    print(report.secrets.current)
