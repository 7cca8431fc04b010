"""Schedule policies, pure: what a due slot does under `overlap`, how many missed slots one look may
spawn, and pause/resume as schedule → schedule (README "Schedule policies")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chronos_server.core import policies
from chronos_server.core.models import (
    PULL,
    CatchUp,
    Interval,
    IntervalUnit,
    Overlap,
    Schedule,
    ScheduleStatus,
)
from chronos_server.core.policies import SlotDecision

MINUTE = 60_000
T0 = 1_800_000_000_000


@pytest.mark.parametrize(
    ("overlap", "unfinished", "expected"),
    [
        (Overlap.ALLOW, False, SlotDecision(spawn=True)),
        (Overlap.ALLOW, True, SlotDecision(spawn=True)),
        (Overlap.SKIP, False, SlotDecision(spawn=True)),
        (Overlap.SKIP, True, SlotDecision(spawn=False)),
        (Overlap.QUEUE, False, SlotDecision(spawn=True)),
        (Overlap.QUEUE, True, SlotDecision(spawn=True, held=True)),
        (Overlap.CANCEL_PREVIOUS, False, SlotDecision(spawn=True, cancel_earlier=True)),
        (Overlap.CANCEL_PREVIOUS, True, SlotDecision(spawn=True, cancel_earlier=True)),
    ],
)
def test_decide_slot(overlap: Overlap, unfinished: bool, expected: SlotDecision) -> None:
    assert policies.decide_slot(overlap, unfinished) == expected


def test_only_skip_and_queue_look_at_unfinished_jobs() -> None:
    looks = {o for o in Overlap if policies.needs_unfinished_check(o)}
    assert looks == {Overlap.SKIP, Overlap.QUEUE}


def schedule(**changes: object) -> Schedule:
    base = Schedule(
        id="s", account_id="a", name="s", description=None, handler="h", cron=None,
        interval=Interval(10, IntervalUnit.MINUTE), timezone="UTC", runs=None, stop_at=None,
        delivery=PULL, payload=None, timeout=30, max_retries=3, status=ScheduleStatus.ACTIVE,
        run_count=0, next_run_at=T0 + 10 * MINUTE, last_run_at=None, anchor_at=T0,
        created_at=T0, updated_at=T0,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("catch_up", "limit", "runs", "run_count", "expected"),
    [
        (CatchUp.LATEST, 10, None, 0, 1),
        (CatchUp.NONE, 10, None, 0, 1),
        (CatchUp.ALL, 10, None, 0, 10),
        (CatchUp.ALL, 1000, None, 5, 1000),
        (CatchUp.ALL, 10, 5, 2, 3),  # `runs` allows 3 more jobs
        (CatchUp.ALL, 2, 5, 2, 2),
        (CatchUp.LATEST, 10, 5, 4, 1),
    ],
)
def test_catch_up_count(
    catch_up: CatchUp, limit: int, runs: int | None, run_count: int, expected: int
) -> None:
    s = schedule(catch_up=catch_up, catch_up_limit=limit, runs=runs, run_count=run_count)
    assert policies.catch_up_count(s) == expected


def test_pause_keeps_the_slot_aside_and_the_status() -> None:
    s = schedule()
    paused = policies.pause(s, T0 + 5)
    assert paused.status is ScheduleStatus.ACTIVE
    assert (paused.paused_at, paused.paused_next_run_at, paused.next_run_at) == (
        T0 + 5,
        T0 + 10 * MINUTE,
        None,
    )
    assert paused.pending_slot == s.pending_slot == T0 + 10 * MINUTE
    assert paused.updated_at == T0 + 5
    assert policies.pause(paused, T0 + 9) is paused  # already paused: unchanged


def test_the_updated_at_token_moves_even_within_one_millisecond() -> None:
    s = schedule(updated_at=T0 + 7)
    assert policies.pause(s, T0 + 7).updated_at == T0 + 8
    assert policies.pause(s, T0 + 3).updated_at == T0 + 8  # a clock stepped back too


@pytest.mark.parametrize(
    ("catch_up", "resumed_at", "next_run_at"),
    [
        (CatchUp.LATEST, 47, 10),  # the missed 10..40 are caught up by admission (it spawns 40)
        (CatchUp.ALL, 47, 10),
        (CatchUp.NONE, 47, 50),
        (CatchUp.NONE, 8, 10),  # resumed before the pending slot: nothing missed
    ],
)
def test_resume(catch_up: CatchUp, resumed_at: int, next_run_at: int) -> None:
    paused = policies.pause(schedule(catch_up=catch_up), T0 + 5 * MINUTE)
    resumed = policies.resume(paused, T0 + resumed_at * MINUTE)
    assert resumed.next_run_at == T0 + next_run_at * MINUTE
    assert (resumed.paused_at, resumed.paused_next_run_at) == (None, None)
    assert resumed.status is ScheduleStatus.ACTIVE
    assert policies.resume(resumed, T0 + 60 * MINUTE) is resumed  # not paused: unchanged


def test_resume_past_stop_at_completes() -> None:
    s = schedule(catch_up=CatchUp.NONE, stop_at=T0 + 30 * MINUTE)
    resumed = policies.resume(policies.pause(s, T0), T0 + 35 * MINUTE)
    assert resumed.status is ScheduleStatus.COMPLETED
    assert resumed.completed_at == T0 + 35 * MINUTE
    assert (resumed.next_run_at, resumed.paused_at, resumed.paused_next_run_at) == (None,) * 3
    # `latest` still has the slots up to stop_at to catch up: admission spawns 30, then completes.
    s = replace(s, catch_up=CatchUp.LATEST)
    resumed = policies.resume(policies.pause(s, T0), T0 + 35 * MINUTE)
    assert (resumed.status, resumed.next_run_at) == (ScheduleStatus.ACTIVE, T0 + 10 * MINUTE)


@pytest.mark.parametrize("status", [ScheduleStatus.ARCHIVED, ScheduleStatus.COMPLETED])
def test_only_an_active_schedule_pauses_or_resumes(status: ScheduleStatus) -> None:
    s = schedule(status=status, next_run_at=None)
    with pytest.raises(ValueError):
        policies.pause(s, T0)
    with pytest.raises(ValueError):
        policies.resume(s, T0)


def test_with_pending_slot_and_complete() -> None:
    s = schedule()
    assert policies.with_pending_slot(s, T0 + 1).next_run_at == T0 + 1
    paused = policies.pause(s, T0)
    moved = policies.with_pending_slot(paused, T0 + 1)
    assert (moved.next_run_at, moved.paused_next_run_at) == (None, T0 + 1)
    done = policies.complete(moved, T0 + 2)
    assert (done.status, done.completed_at, done.paused_at, done.paused_next_run_at) == (
        ScheduleStatus.COMPLETED,
        T0 + 2,
        None,
        None,
    )
