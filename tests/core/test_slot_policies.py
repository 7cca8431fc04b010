"""Slot arithmetic of the schedule policies (README "Schedule policies"): which missed slots a due
schedule spawns under `catch_up`, where a resumed schedule continues, and the cron walk they use.
Pure and table-driven; every instant is Unix ms."""

from __future__ import annotations

import pytest

from chronos_server.core.models import CatchUp
from chronos_server.core.slots import (
    MISFIRE_GRACE_MS,
    SpawnPlan,
    cron_slots_between,
    latest_due_slot,
    next_cron_slot,
    plan_spawn,
    resume_next_run,
)
from tests.core.test_slots import DST_CASES, HOUR, MINUTE, NY, ms

L, N, A = CatchUp.LATEST, CatchUp.NONE, CatchUp.ALL
M10 = 10 * MINUTE  # an interval grid anchored at 0: slots at 10, 20, 30 ... minutes


def plan(
    catch_up: CatchUp, next_run: int, now: int, limit: int = 1, stop_at: int | None = None
) -> SpawnPlan:
    return plan_spawn(
        None, M10, "UTC", 0, next_run, now, stop_at_ms=stop_at, catch_up=catch_up, limit=limit
    )


def minutes(*values: int) -> tuple[int, ...]:
    return tuple(v * MINUTE for v in values)


# (policy, limit, next_run, now, stop_at, slots spawned, following) — minutes on the 10-minute grid
INTERVAL_CASES = [
    # On time (the pass is a few ms late): every policy spawns the slot.
    (L, 1, 10, 10, None, (10,), 20),
    (N, 1, 10, 10, None, (10,), 20),
    (A, 5, 10, 10, None, (10,), 20),
    # Down from 10 to 45: slots 10..40 missed.
    (L, 1, 10, 45, None, (40,), 50),
    (N, 1, 10, 45, None, (), 50),  # 40 is 5 minutes old: missed
    (A, 10, 10, 45, None, (10, 20, 30, 40), 50),  # every one, oldest first
    (A, 2, 10, 45, None, (30, 40), 50),  # the limit keeps the most recent
    (A, 1, 10, 45, None, (40,), 50),  # `latest` is `all` with limit 1
    # `none` within the grace (a restart, a slow pass): not missed.
    (N, 1, 10, 40, None, (40,), 50),
    # stop_at caps the slots, whatever the policy.
    (L, 1, 10, 45, 25, (20,), 50),
    (A, 10, 10, 45, 25, (10, 20), 50),
    (N, 1, 10, 45, 25, (), 50),
    # A stored next_run off the grid with no grid point since: spawned once as stored.
    (A, 10, 15, 19, None, (15,), 20),
    (N, 1, 15, 19, None, (), 20),  # ... 4 minutes late: missed
]


@pytest.mark.parametrize(
    ("catch_up", "limit", "next_run", "now", "stop_at", "spawned", "following"), INTERVAL_CASES
)
def test_plan_spawn_on_an_interval_grid(
    catch_up: CatchUp,
    limit: int,
    next_run: int,
    now: int,
    stop_at: int | None,
    spawned: tuple[int, ...],
    following: int,
) -> None:
    stop = stop_at * MINUTE if stop_at is not None else None
    got = plan(catch_up, next_run * MINUTE, now * MINUTE + 3, limit, stop)
    assert got == SpawnPlan(minutes(*spawned), following * MINUTE)


def test_none_grace_is_inclusive_and_exact() -> None:
    slot = 4 * M10
    assert plan(N, M10, slot + MISFIRE_GRACE_MS).slots == (slot,)
    assert plan(N, M10, slot + MISFIRE_GRACE_MS + 1).slots == ()


@pytest.mark.parametrize(
    ("next_run", "now"),
    [(M10, M10), (M10, 45 * MINUTE), (M10, 30 * 86_400_000 + 7), (15 * MINUTE, 19 * MINUTE)],
)
def test_latest_is_the_g27_coalescing(next_run: int, now: int) -> None:
    slot, following = latest_due_slot(None, M10, "UTC", 0, next_run, now)
    assert plan(L, next_run, now) == SpawnPlan((slot,), following)


def test_a_long_downtime_on_a_one_second_grid_is_arithmetic() -> None:
    day = 86_400_000
    got = plan_spawn(None, 1000, "UTC", 0, 1000, 30 * day + 999, catch_up=A, limit=1000)
    assert got.slots == tuple(range(30 * day - 999_000, 30 * day + 1, 1000))
    assert got.following == 30 * day + 1000


CRON_CASES = [
    # Hourly, down from 10:00 to 13:20.
    ("0 * * * *", "UTC", L, 1, "10:00", "13:20", ["13:00"], "14:00"),
    ("0 * * * *", "UTC", A, 10, "10:00", "13:20", ["10:00", "11:00", "12:00", "13:00"], "14:00"),
    ("0 * * * *", "UTC", A, 2, "10:00", "13:20", ["12:00", "13:00"], "14:00"),
    ("0 * * * *", "UTC", N, 1, "10:00", "13:20", [], "14:00"),
    ("0 * * * *", "UTC", N, 1, "10:00", "13:00:59", ["13:00"], "14:00"),
    # Every minute, 200 minutes down: only the last 3 are walked for, not 200.
    ("* * * * *", "UTC", A, 3, "10:00", "13:20:30", ["13:18", "13:19", "13:20"], "13:21"),
    # Sparse slots (weekdays at 9:00 is too slow for a table; 9 to 11 each 20 minutes).
    ("*/20 9-10 * * *", "UTC", A, 4, "09:00", "12:00", ["09:40", "10:00", "10:20", "10:40"], None),
    # Fall-back in New York: the second 01:xx (06:00Z-06:59Z) holds no slot.
    ("*/30 * * * *", NY, A, 10, "05:00", "07:10", ["05:00", "05:30", "07:00"], "07:30"),
]


@pytest.mark.parametrize(
    ("expr", "tz", "catch_up", "limit", "next_run", "now", "spawned", "following"), CRON_CASES
)
def test_plan_spawn_on_cron(
    expr: str,
    tz: str,
    catch_up: CatchUp,
    limit: int,
    next_run: str,
    now: str,
    spawned: list[str],
    following: str | None,
) -> None:
    day = "2026-11-01" if tz == NY else "2026-04-01"

    def at(hhmm: str) -> int:
        return ms(f"{day}T{hhmm}{'' if hhmm.count(':') == 2 else ':00'}Z")

    got = plan_spawn(expr, None, tz, 0, at(next_run), at(now), catch_up=catch_up, limit=limit)
    assert got.slots == tuple(at(s) for s in spawned)
    if following is not None:
        assert got.following == at(following)
    else:
        assert got.following == next_cron_slot(expr, tz, at(now))


def test_plan_spawn_refuses_a_schedule_not_due_and_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        plan(L, 2 * M10, M10)
    with pytest.raises(ValueError):
        plan(A, M10, 2 * M10, limit=0)


def test_past_stop_at_nothing_is_left_to_spawn() -> None:
    assert plan(L, 3 * M10, 4 * M10, stop_at=2 * M10) == SpawnPlan((), 5 * M10)


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), DST_CASES)
def test_the_cron_walk_is_the_next_cron_slot_sequence(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    """One cronsim walk gives exactly what repeated `next_cron_slot` gives, DST included."""
    until = ms(expected[-1])
    assert list(cron_slots_between(expr, tz, ms(after), until)) == [ms(e) for e in expected]
    assert list(cron_slots_between(expr, tz, ms(after), until - 1)) == [
        ms(e) for e in expected[:-1]
    ]


# (policy, pending slot, resumed at, next_run_at) — minutes on the 10-minute grid
RESUME_CASES = [
    # Paused at 12 (slot 20 pending), resumed at 47: 20, 30, 40 were missed while paused.
    (L, 20, 47, 20),  # admission then spawns 40 (G-27)
    (A, 20, 47, 20),  # admission then spawns 20, 30, 40 (up to the limit)
    (N, 20, 47, 50),  # skipped, every one: no grace for a pause
    (N, 20, 40, 50),  # a slot exactly at the resume is missed too
    # Resumed before the pending slot came: nothing was missed.
    (L, 20, 15, 20),
    (N, 20, 15, 20),
    (A, 20, 15, 20),
]


@pytest.mark.parametrize(("catch_up", "pending", "now", "expected"), RESUME_CASES)
def test_resume_next_run(catch_up: CatchUp, pending: int, now: int, expected: int) -> None:
    got = resume_next_run(catch_up, None, M10, "UTC", 0, pending * MINUTE, now * MINUTE)
    assert got == expected * MINUTE


def test_resume_next_run_on_cron() -> None:
    pending, now = ms("2026-04-01T10:00Z"), ms("2026-04-01T13:20Z")
    assert resume_next_run(N, "0 * * * *", None, "UTC", 0, pending, now) == ms("2026-04-01T14:00Z")
    assert resume_next_run(L, "0 * * * *", None, "UTC", 0, pending, now) == pending
    assert HOUR == 60 * MINUTE
