"""Per-handler limits: setting and removing them, and the release of waiting (`limited`) jobs
as far as each limit allows.

The release runs under the limit row's lock (PostgreSQL: `FOR UPDATE`, in one order; SQLite: the
one writer), so what it counts is what every other release committed: however many servers
admit, a handler never has more than `max_running` jobs released. Only a release, with that lock,
moves a limited handler's job into the counted states; a claim never takes one straight from
`pending` (hotpath.sql, `oldest_due_for_handler`).
"""

from __future__ import annotations

from chronos_server.core.limits import (
    HandlerLimit,
    after_release,
    initial_tokens,
    plan_release,
)
from chronos_server.store.base import ReadyBatch, Released
from chronos_server.store.rows import Row
from chronos_server.store.transactions.tx import Tx


def limit_from_row(r: Row) -> HandlerLimit:
    rate = r["max_per_second"]
    return HandlerLimit(
        account_id=r["account_id"],
        handler=r["handler"],
        max_running=r["max_running"],
        max_per_second=None if rate is None else float(rate),
        tokens=float(r["tokens"]),
        tokens_at=int(r["tokens_at"]),
        created_at=int(r["created_at"]),
        updated_at=int(r["updated_at"]),
    )


def release_limited(tx: Tx, now: int, batch: int) -> Released:
    """Each limited handler with waiting jobs: as many go on as its limits allow now."""
    out = Released()
    for row in tx.all("limits_with_waiting_jobs"):
        limit = limit_from_row(row)
        key = {"account_id": limit.account_id, "handler": limit.handler}
        active_row = tx.one("count_active_for_handler", **key)
        active = int(active_row["n"]) if active_row else 0
        planned = plan_release(limit, active, batch, now)
        statuses = []
        if planned.count > 0:
            statuses = [
                r["status"] for r in tx.all("release_limited_jobs", n=planned.count, now=now, **key)
            ]
        done = after_release(limit, planned, len(statuses), now)
        if statuses and limit.max_per_second is not None:
            tx.run("spend_limit_tokens", tokens=done.tokens, tokens_at=now, **key)
        _count(out, limit.account_id, limit.handler, statuses)
        if done.next_token_at is not None:
            wake = done.next_token_at
            out.next_wakeup = wake if out.next_wakeup is None else min(out.next_wakeup, wake)
        out.more = out.more or len(statuses) >= batch
    return out


def _count(out: Released, account_id: str, handler: str, statuses: list[str]) -> None:
    ready = sum(1 for s in statuses if s == "ready")
    if ready:
        out.ready.append(ReadyBatch(account_id, handler, ready))
    out.queued_push += len(statuses) - ready


def list_limits(tx: Tx, account_id: str) -> list[HandlerLimit]:
    return [limit_from_row(r) for r in tx.all("list_handler_limits", account_id=account_id)]


def get_limits(tx: Tx, account_id: str, handler: str) -> HandlerLimit | None:
    row = tx.one("get_handler_limits", account_id=account_id, handler=handler)
    return limit_from_row(row) if row else None


def set_limits(
    tx: Tx,
    account_id: str,
    handler: str,
    max_running: int | None,
    max_per_second: float | None,
    now: int,
) -> HandlerLimit:
    """Create or replace a handler's limits; the token bucket carries over (`initial_tokens`)."""
    key = {"account_id": account_id, "handler": handler}
    found = tx.one("lock_handler_limits", **key)
    previous = limit_from_row(found) if found else None
    tx.run(
        "upsert_handler_limits",
        max_running=max_running,
        max_per_second=max_per_second,
        tokens=initial_tokens(max_per_second, previous, now),
        tokens_at=now,
        now=now,
        **key,
    )
    stored = get_limits(tx, account_id, handler)
    assert stored is not None
    return stored


def delete_limits(tx: Tx, account_id: str, handler: str, now: int) -> Released | None:
    """Remove a handler's limits (None: it had none) and let every job waiting for them go on."""
    key = {"account_id": account_id, "handler": handler}
    if tx.run("delete_handler_limits", **key) != 1:
        return None
    out = Released()
    statuses = [r["status"] for r in tx.all("release_all_limited_for_handler", now=now, **key)]
    _count(out, account_id, handler, statuses)
    return out


def limited_keys(tx: Tx) -> set[tuple[str, str]]:
    return {(r["account_id"], r["handler"]) for r in tx.all("all_handler_limit_keys")}
