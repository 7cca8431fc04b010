"""SQLite only: with 100k ready jobs, the claim query is an index search on `jobs_ready`.

The claim runs on every long-poll wake-up, so a full scan or a sort of the ready set would make
claiming O(backlog). This checks the plan SQLite chooses (never a timing), both on a fresh database
as the server leaves it and after `ANALYZE` has given the planner real statistics.
"""

from __future__ import annotations

import sqlite3

import pytest

from chronos_server.core.models import JobStatus
from chronos_server.store.base import Store
from chronos_server.store.queries import load_queries
from chronos_server.store.rows import job_params
from chronos_server.store.sqlite import SQLiteStore

from .conftest import SQLITE_STORES, T0, Accounts, make_job, must_job

JOBS = 100_000
HANDLERS = 10


def bulk_insert_ready_jobs(conn: sqlite3.Connection, account_ids: list[str]) -> None:
    """One executemany of the store's own `insert_job` statement, in one transaction."""
    template = job_params(make_job(account_ids[0], status=JobStatus.READY))
    rows = (
        template
        | {
            "id": f"bulk-{i:06d}",
            "account_id": account_ids[i % 2],
            "handler": f"h{i // 2 % HANDLERS}",
            # Run times descend with i, so insertion order is not claim order.
            "run_at": T0 + JOBS - i,
            "scheduled_for": T0 + JOBS - i,
            "created_at": T0 + i,
            "updated_at": T0 + i,
        }
        for i in range(JOBS)
    )
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(load_queries("sqlite")["insert_job"], rows)
    conn.execute("COMMIT")


def claim_plan(conn: sqlite3.Connection, account_id: str) -> list[str]:
    query = load_queries("sqlite")["oldest_ready_for_handler"]
    rows = conn.execute(
        f"EXPLAIN QUERY PLAN {query}", {"account_id": account_id, "handler": "h3", "limit": 1}
    ).fetchall()
    return [str(row["detail"]) for row in rows]


@pytest.mark.stores(*SQLITE_STORES)
async def test_claim_uses_the_ready_index_at_scale(store: Store, acct: Accounts) -> None:
    assert isinstance(store, SQLiteStore)
    conn = store._writer  # reaching into SQLite for bulk setup and the plan only
    bulk_insert_ready_jobs(conn, [acct.a, acct.b])

    for analyzed in (False, True):
        if analyzed:
            conn.execute("ANALYZE")
        plan = claim_plan(conn, acct.a)
        assert any("USING INDEX jobs_ready" in d or "COVERING INDEX jobs_ready" in d for d in plan)
        assert not any("TEMP B-TREE" in d for d in plan), plan
        assert not any(d.startswith("SCAN") for d in plan), plan

    # The index gives the right answer too: the latest-inserted h3 job of account a runs first.
    newest = max(i for i in range(0, JOBS, 2) if i // 2 % HANDLERS == 3)
    claimed = await store.claim_ready_job(acct.a, ["h3"], None, T0 + 2 * JOBS)
    assert claimed is not None and claimed.job.id == f"bulk-{newest:06d}"
    assert (await must_job(store, acct.a, claimed.job.id)).status is JobStatus.RUNNING


# Partial indexes over the transient statuses: scanning one reads only the jobs in that status.
TRANSIENT_INDEXES = ("jobs_held", "jobs_limited", "jobs_due", "jobs_due_push", "jobs_queued")
ADMISSION_STATEMENTS = (
    "release_held_jobs",
    "admit_due_jobs",
    "next_wakeup",
    "next_due_push",
    "next_due_pull",
    "any_held_job",
    "any_limited_job",
)


def whole_table_reads(conn: sqlite3.Connection, name: str) -> list[str]:
    """The plan's steps that read `jobs` by something other than a transient status's index."""
    query = load_queries("sqlite")[name]
    params = dict.fromkeys(("now", "push_by", "limit", "ids"), 0)
    rows = conn.execute(f"EXPLAIN QUERY PLAN {query}", params).fetchall()
    return [
        str(row["detail"])
        for row in rows
        if str(row["detail"]).startswith("SCAN jobs")
        and not any(str(row["detail"]).endswith(f"INDEX {ix}") for ix in TRANSIENT_INDEXES)
    ]


@pytest.mark.stores(*SQLITE_STORES)
async def test_admission_pass_never_reads_finished_jobs(store: Store, acct: Accounts) -> None:
    """Every admission pass (every due instant) asks whether any job is held or limited; a scan
    of the whole table there made SQLite's long-poll lateness grow with the finished jobs."""
    assert isinstance(store, SQLiteStore)
    conn = store._writer  # reaching into SQLite for bulk setup and the plan only
    bulk_insert_ready_jobs(conn, [acct.a, acct.b])
    conn.execute("UPDATE jobs SET status = 'completed', finished_at = updated_at")

    for analyzed in (False, True):
        if analyzed:
            conn.execute("ANALYZE")
        for name in ADMISSION_STATEMENTS:
            assert whole_table_reads(conn, name) == [], name
