"""Schedule policies (extension; README "Schedule policies"): pause and resume, what a due slot
does under the schedule's `overlap`, and how many missed slots its `catch_up` may spawn.

Pure: schedules in, schedules (or decisions) out; `now` is passed. The slot arithmetic itself is
`slots.py`; the store applies these results as compare-and-set writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chronos_server.core import slots
from chronos_server.core.models import CatchUp, Overlap, Schedule, ScheduleStatus


@dataclass(frozen=True)
class SlotDecision:
    """What one due slot does: spawn a job (`held` behind the earlier ones: `overlap: queue`),
    after cancelling the schedule's earlier jobs not yet running (`cancel_previous`), or nothing
    (`skip`: the slot is consumed, no job, `run_count` unchanged)."""

    spawn: bool
    held: bool = False
    cancel_earlier: bool = False


def needs_unfinished_check(overlap: Overlap) -> bool:
    """Whether `decide_slot` needs to know if an earlier job of the schedule is unfinished."""
    return overlap in (Overlap.SKIP, Overlap.QUEUE)


def decide_slot(overlap: Overlap, unfinished: bool) -> SlotDecision:
    """`unfinished`: some job of the schedule (spawned or run by hand) is not completed, failed
    or cancelled yet — waiting, held, running or retrying."""
    if overlap is Overlap.SKIP:
        return SlotDecision(spawn=not unfinished)
    if overlap is Overlap.QUEUE:
        return SlotDecision(spawn=True, held=unfinished)
    if overlap is Overlap.CANCEL_PREVIOUS:
        return SlotDecision(spawn=True, cancel_earlier=True)
    return SlotDecision(spawn=True)


def catch_up_count(s: Schedule) -> int:
    """How many due slots one look may spawn: `catch_up_limit` under `all` (else one), and never
    more than the jobs `runs` still allows."""
    count = s.catch_up_limit if s.catch_up is CatchUp.ALL else 1
    if s.runs is not None:
        count = min(count, s.runs - s.run_count)
    return max(count, 1)


def bump(s: Schedule, now: int) -> int:
    """A new `updated_at`: the compare-and-set token must change even within one millisecond."""
    return max(now, s.updated_at + 1)


def complete(s: Schedule, now: int) -> Schedule:
    """`active` → `completed` (G-29); a pause ends with it."""
    return replace(
        s,
        status=ScheduleStatus.COMPLETED,
        completed_at=now,
        next_run_at=None,
        paused_at=None,
        paused_next_run_at=None,
    )


def with_pending_slot(s: Schedule, slot: int) -> Schedule:
    """`slot` as the first unspawned slot: `next_run_at`, or kept aside while paused."""
    if s.paused_at is not None:
        return replace(s, paused_next_run_at=slot)
    return replace(s, next_run_at=slot)


def pause(s: Schedule, now: int) -> Schedule:
    """Pause an active schedule (a paused one is returned unchanged). It keeps `status: active`;
    `next_run_at` is None while paused (it spawns nothing), its value kept aside for resume."""
    if s.status is not ScheduleStatus.ACTIVE:
        raise ValueError(f"only an active schedule can be paused, not a {s.status.value} one")
    if s.paused_at is not None:
        return s
    return replace(
        s,
        paused_at=now,
        paused_next_run_at=s.next_run_at,
        next_run_at=None,
        updated_at=bump(s, now),
    )


def resume(s: Schedule, now: int) -> Schedule:
    """Resume a paused schedule (another is returned unchanged): the slots missed while paused
    go by its `catch_up` (`slots.resume_next_run`); past `runs`/`stop_at`, it completes."""
    if s.status is not ScheduleStatus.ACTIVE:
        raise ValueError(f"only an active schedule can be resumed, not a {s.status.value} one")
    if s.paused_at is None:
        return s
    assert s.paused_next_run_at is not None, "a paused schedule keeps its next slot"
    next_run = slots.resume_next_run(
        s.catch_up,
        s.cron,
        s.interval.ms if s.interval else None,
        s.timezone,
        s.anchor_at,
        s.paused_next_run_at,
        now,
    )
    resumed = replace(
        s, paused_at=None, paused_next_run_at=None, next_run_at=next_run, updated_at=bump(s, now)
    )
    if slots.completes_before(next_run, s.runs, s.run_count, s.stop_at):
        return complete(resumed, now)
    return resumed
