"""Lists on every store: keyset cursors visit each row once while rows come and go; totals are
exact when small and flagged when estimated; and (PostgreSQL) every filter combination the API
offers plans onto an index, never a sequential scan of jobs or executions."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chronos_server.core.models import ExecutionStatus, Job, JobStatus, Page
from chronos_server.settings import Retention
from chronos_server.store.base import Store
from chronos_server.store.listing import EXACT_TOTAL_UP_TO, EXECUTIONS, JOBS, ListQuery
from tests.pg import connect
from tests.store.conftest import T0, Accounts, insert_running, make_job, make_schedule

Lister = Callable[[tuple[int, str] | None], Awaitable[Page[Any]]]


async def walk(
    list_page: Lister,
    key: Callable[[Any], tuple[int, str]],
    between: Callable[[int], Awaitable[None]],
) -> list[str]:
    """Every page by cursor, calling `between(n)` after page n; the ids in the order seen."""
    seen: list[str] = []
    after = None
    for n in itertools.count():
        page = await list_page(after)
        seen.extend(item.id for item in page.items)
        if not page.more:
            assert len(page.items) <= 5
            return seen
        after = key(page.items[-1])
        await between(n)
    raise AssertionError("unreachable")


async def test_cursor_visits_every_row_once_while_rows_come_and_go(
    store: Store, acct: Accounts
) -> None:
    # 40 pending jobs (created in fours at the same instant: ties broken by id) and 20
    # cancelled ones among them, deleted mid-walk; new jobs arrive while walking.
    kept = [make_job(acct.a, created_at=T0 + i // 4, run_at=T0 + 10**9) for i in range(40)]
    doomed = [make_job(acct.a, created_at=T0 + i // 2, run_at=T0 + 10**9) for i in range(20)]
    await store.insert_jobs(kept + doomed)
    for job in doomed:
        await store.cancel_job(acct.a, job.id, T0 + 100)
    rng = random.Random(7)
    added: list[str] = []

    async def churn(n: int) -> None:
        new = make_job(acct.a, created_at=T0 + 1000 + n, run_at=T0 + 10**9)
        old = make_job(acct.a, created_at=T0 + rng.randrange(20), run_at=T0 + 10**9)
        await store.insert_jobs([new, old])
        added.extend([new.id, old.id])
        if n == 3:
            await store.prune({JobStatus.CANCELLED: T0 + 101}, None, 100)

    for statuses in (None, [JobStatus.PENDING, JobStatus.CANCELLED]):

        async def list_page(
            after: tuple[int, str] | None, statuses: list[JobStatus] | None = statuses
        ) -> Page[Job]:
            return await store.list_jobs(
                acct.a,
                statuses=statuses,
                schedule_id=None,
                handler=None,
                offset=0,
                limit=5,
                after=after,
            )

        seen = await walk(list_page, lambda j: (j.created_at, j.id), churn)
        counts = Counter(seen)
        assert max(counts.values()) == 1, "a row seen twice"
        assert {j.id for j in kept} <= set(seen), "a row present throughout was skipped"
        assert set(seen) <= {j.id for j in kept + doomed} | set(added)


async def test_executions_and_schedules_page_by_cursor(store: Store, acct: Accounts) -> None:
    runs = [await insert_running(store, acct.a, T0 + i // 3) for i in range(12)]
    pages: list[str] = []

    async def list_runs(after: tuple[int, str] | None) -> Page[Any]:
        return await store.list_executions(
            acct.a, job_id=None, statuses=[ExecutionStatus.RUNNING], offset=0, limit=5, after=after
        )

    async def nothing(n: int) -> None:
        return None

    pages = await walk(list_runs, lambda e: (e.started_at, e.id), nothing)
    assert sorted(pages) == sorted(r.execution.id for r in runs) and len(pages) == 12
    schedules = [make_schedule(acct.a, created_at=T0 + i // 2) for i in range(11)]
    for schedule in schedules:
        await store.insert_schedule(schedule)

    async def list_schedules(after: tuple[int, str] | None) -> Page[Any]:
        return await store.list_schedules(
            acct.a, status=None, handler="h", offset=0, limit=5, after=after
        )

    seen = await walk(list_schedules, lambda s: (s.created_at, s.id), nothing)
    assert sorted(seen) == sorted(s.id for s in schedules) and len(seen) == 11


async def test_totals_exact_when_small_estimated_and_flagged_when_large(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    many = EXACT_TOTAL_UP_TO + 10
    await store.insert_jobs(
        [make_job(acct.a, schedule_id=schedule.id, created_at=T0 + i) for i in range(many)]
    )
    await store.insert_jobs([make_job(acct.a, created_at=T0, handler="other") for _ in range(3)])

    async def page(offset: int = 0, **filters: Any) -> Page[Job]:
        args: dict[str, Any] = {"statuses": None, "schedule_id": None, "handler": None} | filters
        return await store.list_jobs(acct.a, offset=offset, limit=20, **args)

    small = await page(handler="other")
    assert (small.total, small.estimated, small.more) == (3, False, False)
    second = await page(offset=20, statuses=[JobStatus.PENDING], handler="other")
    assert (second.total, second.estimated) == (3, False)
    # Filters the kept counts answer (account, status, handler): exact however many.
    exact: list[dict[str, Any]] = [{}, {"statuses": [JobStatus.PENDING]}, {"handler": "h"}]
    for filters in exact:
        counted = await page(**filters)
        assert not counted.estimated and counted.more, filters
        assert counted.total == (many + 3 if "handler" not in filters else many)
        if filters.get("statuses"):
            assert counted.total == many + 3
    # Others: an estimate, flagged, never below what was counted.
    rough: list[dict[str, Any]] = [{"schedule_id": schedule.id}, {"since": T0 + 5}]
    for filters in rough:
        estimated = await page(**filters)
        assert estimated.estimated and estimated.total > EXACT_TOTAL_UP_TO, filters
        assert len(estimated.items) == 20 and estimated.more


# --- PostgreSQL: EXPLAIN every filter combination --------------------------------------------

JOB_FILTERS = ("status", "statuses", "since", "schedule_id", "handler", "cursor")
EXECUTION_FILTERS = ("status", "statuses", "since", "job_id", "cursor")


def _queries(table: str) -> list[ListQuery]:
    names = JOB_FILTERS if table == "jobs" else EXECUTION_FILTERS
    found = []
    for n in range(len(names) + 1):
        for combo in itertools.combinations(names, n):
            if "status" in combo and "statuses" in combo:
                continue
            equal = [("account_id", "acct")]
            equal += [(c, "x") for c in ("schedule_id", "handler", "job_id") if c in combo]
            statuses: tuple[str, ...] = ("failed",) if "status" in combo else ()
            statuses = ("pending", "held") if "statuses" in combo else statuses
            found.append(
                ListQuery(
                    JOBS if table == "jobs" else EXECUTIONS,
                    tuple(equal),
                    statuses,
                    T0 if "since" in combo else None,
                    (T0, "id") if "cursor" in combo else None,
                )
            )
    return found


@pytest.mark.stores("postgres")
async def test_every_list_filter_combination_uses_an_index(store: Store, acct: Accounts) -> None:
    rng = random.Random(3)
    await store.insert_jobs(
        [make_job(acct.a, created_at=T0 + rng.randrange(10**6)) for _ in range(300)]
    )
    url = store._conninfo  # type: ignore[attr-defined]
    with connect(url) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # a Seq Scan now means: no index could serve
        for table in ("jobs", "executions"):
            for query in _queries(table):
                shapes = [query.page_sql(), query.count_sql()]
                if (found := query.counts_sql()) is not None:
                    shapes.append(found)
                for name, sql, params in shapes:
                    params = params | {"limit": 21, "offset": 0, "depth": 21, "cap": 1001}
                    text = pyformat_for_test(sql)
                    plan = "\n".join(
                        str(row[0]) for row in conn.execute("EXPLAIN " + text, params).fetchall()
                    )
                    for scanned in ("jobs", "executions"):
                        assert f"Seq Scan on {scanned}" not in plan, (name, plan)
                    if name.startswith("count:"):
                        # Counted from an ordered index range that stops at the cap, never a
                        # bitmap of every match (nor, with seqscan on, a sequential scan that
                        # reads the table until it has found the cap's worth of matches).
                        assert "Bitmap" not in plan, (name, plan)
    assert Retention().enabled


def pyformat_for_test(sql: str) -> str:
    from chronos_server.store.postgres import pyformat

    return pyformat(sql)


@pytest.mark.stores("postgres")
async def test_a_capped_count_reads_an_index_range_not_the_table_up_to_its_matches(
    store: Store, acct: Accounts
) -> None:
    """Half the executions failed, all of them written after the completed ones: counting up to
    the cap by "any 1,001 matches" makes PostgreSQL scan the table from its start (cheap by its
    estimate, ~2,000 rows) and read every completed row first. The count reads the newest
    1,001 of the status's own index range instead."""
    job = make_job(acct.a)
    await store.insert_jobs([job])
    url = store._conninfo  # type: ignore[attr-defined]
    with connect(url) as conn:
        for status, first in (("completed", 0), ("failed", 10_000)):
            conn.execute(
                "INSERT INTO executions (id, job_id, account_id, attempt, trigger, status,"
                " started_at) SELECT 'e' || g, %s, %s, g, 'api', %s, %s::bigint + g"
                " FROM generate_series(%s::int, %s::int) AS g",
                (job.id, acct.a, status, T0, first, first + 9_999),
            )
        conn.execute("ANALYZE executions")
        query = ListQuery(EXECUTIONS, (("account_id", acct.a),), ("failed",))
        _name, sql, params = query.count_sql()
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + pyformat_for_test(sql),
                params | {"cap": EXACT_TOTAL_UP_TO + 1},
            ).fetchall()
        )
        assert "Seq Scan" not in plan, plan
        counted = conn.execute(pyformat_for_test(sql), params | {"cap": 1001}).fetchone()
        assert counted is not None and counted[0] == 1001
