"""Schedules: replace, archive, run now, pause and resume, and spawning the jobs of due schedules
(under their `catch_up` and `overlap` policies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from chronos_server import errors
from chronos_server.core import policies, slots
from chronos_server.core.models import Job, JobStatus, Schedule, ScheduleStatus, Trigger
from chronos_server.store.rows import job_params, schedule_from_row, schedule_params
from chronos_server.store.transactions.tx import Tx, new_id


def replace_schedule(
    tx: Tx, s: Schedule, expected_status: ScheduleStatus, expected_updated_at: int
) -> bool:
    params = schedule_params(s)
    params.update(expected_status=expected_status.value, expected_updated_at=expected_updated_at)
    return tx.run("replace_schedule", **params) == 1


def archive_schedule(tx: Tx, account_id: str, schedule_id: str, now: int) -> Schedule:
    current = _schedule_or_404(tx, account_id, schedule_id)
    _require_active(current)
    if tx.run("archive_schedule", id=schedule_id, now=now) != 1:
        raise errors.ScheduleStatusChanged()
    tx.run("cancel_schedule_jobs", schedule_id=schedule_id, now=now)
    return _schedule_or_404(tx, account_id, schedule_id)


def run_schedule_now(tx: Tx, account_id: str, schedule_id: str, job_id: str, now: int) -> Job:
    """A manual job now (paused or not; `overlap` does not apply to it), counted toward `runs`."""
    s = _schedule_or_404(tx, account_id, schedule_id)
    _require_active(s)
    job = _job_from_schedule(s, job_id, now, now, Trigger.MANUAL, idempotency_key=None)
    tx.run("insert_job", **job_params(job))
    run_count = s.run_count + 1
    done = slots.completes_before(s.pending_slot, s.runs, run_count, s.stop_at)
    updated = _advance(s, run_count, s.next_run_at, s.last_run_at, done, now)
    if not replace_schedule(tx, updated, ScheduleStatus.ACTIVE, s.updated_at):
        raise errors.ScheduleStatusChanged()
    return job


def pause_schedule(tx: Tx, account_id: str, schedule_id: str, now: int) -> Schedule:
    return _change_activity(tx, account_id, schedule_id, lambda s: policies.pause(s, now))


def resume_schedule(tx: Tx, account_id: str, schedule_id: str, now: int) -> Schedule:
    return _change_activity(tx, account_id, schedule_id, lambda s: policies.resume(s, now))


def _change_activity(
    tx: Tx, account_id: str, schedule_id: str, change: Callable[[Schedule], Schedule]
) -> Schedule:
    """Pause or resume: 404/409 as archive; no change (already so) writes nothing."""
    row = tx.one("get_schedule_for_update", id=schedule_id, account_id=account_id)
    if row is None:
        raise errors.ScheduleNotFound()
    current = schedule_from_row(row)
    _require_active(current)
    changed = change(current)
    if changed is current:
        return current
    if not replace_schedule(tx, changed, ScheduleStatus.ACTIVE, current.updated_at):
        raise errors.ScheduleStatusChanged()
    return changed


def spawn_due_schedules(tx: Tx, now: int, limit: int) -> int:
    spawned = 0
    for row in tx.all("due_schedules", now=now, limit=limit):
        spawned += _spawn_due(tx, schedule_from_row(row), now)
    return spawned


def _spawn_due(tx: Tx, s: Schedule, now: int) -> int:
    """The slots `catch_up` picks (`slots.plan_spawn`), each as `overlap` decides, then the
    schedule moved past now — one transaction. Each job is inserted under the unique
    (schedule_id, spawn_slot) index, so a slot spawns once however many passes try it."""
    assert s.next_run_at is not None
    plan = slots.plan_spawn(
        s.cron,
        s.interval.ms if s.interval else None,
        s.timezone,
        s.anchor_at,
        s.next_run_at,
        now,
        stop_at_ms=s.stop_at,
        catch_up=s.catch_up,
        limit=policies.catch_up_count(s),
    )
    inserted, last_run = 0, s.last_run_at
    for slot in plan.slots:
        decision = _decide_slot(tx, s)
        if not decision.spawn:
            continue  # skipped: consumed, no job, not counted toward `runs`
        if decision.cancel_earlier:
            tx.run("cancel_previous_jobs", schedule_id=s.id, before=slot, now=now)
        job = _job_from_schedule(
            s, new_id(), slot, now, Trigger.SCHEDULE, slots.spawn_key(s.id, slot)
        )
        # The slot, not the shown key, is what is stored: (schedule_id, spawn_slot) is unique
        # apart from clients' idempotency keys, so the insert is a no-op only if this slot was
        # spawned.
        params = job_params(replace(job, held=decision.held))
        inserted += tx.run("insert_spawned_job", **params, spawn_slot=slot)
        last_run = slot
    run_count = s.run_count + inserted
    done = slots.completes_before(plan.following, s.runs, run_count, s.stop_at)
    updated = _advance(s, run_count, plan.following, last_run, done, now)
    replace_schedule(tx, updated, ScheduleStatus.ACTIVE, s.updated_at)
    return inserted


def _decide_slot(tx: Tx, s: Schedule) -> policies.SlotDecision:
    unfinished = policies.needs_unfinished_check(s.overlap) and (
        tx.one("schedule_has_unfinished_job", schedule_id=s.id) is not None
    )
    return policies.decide_slot(s.overlap, unfinished)


def _advance(
    s: Schedule, run_count: int, next_run: int | None, last_run: int | None, done: bool, now: int
) -> Schedule:
    advanced = replace(
        s,
        run_count=run_count,
        next_run_at=next_run,
        last_run_at=last_run,
        updated_at=policies.bump(s, now),
    )
    return policies.complete(advanced, now) if done else advanced


def _job_from_schedule(
    s: Schedule, job_id: str, slot: int, now: int, trigger: Trigger, idempotency_key: str | None
) -> Job:
    return Job(
        id=job_id,
        account_id=s.account_id,
        schedule_id=s.id,
        name=s.name,
        description=s.description,
        handler=s.handler,
        delivery=s.delivery,
        payload=s.payload,
        timeout=s.timeout,
        max_retries=s.max_retries,
        idempotency_key=idempotency_key,
        status=JobStatus.PENDING,
        scheduled_for=slot,
        run_at=slot,
        attempt_count=0,
        last_execution_id=None,
        first_trigger=trigger,
        created_at=now,
        updated_at=now,
    )


def _schedule_or_404(tx: Tx, account_id: str, schedule_id: str) -> Schedule:
    row = tx.one("get_schedule", id=schedule_id, account_id=account_id)
    if row is None:
        raise errors.ScheduleNotFound()
    return schedule_from_row(row)


def _require_active(s: Schedule) -> None:
    if s.status is ScheduleStatus.ARCHIVED:
        raise errors.ScheduleArchived()
    if s.status is ScheduleStatus.COMPLETED:
        raise errors.ScheduleCompleted()
