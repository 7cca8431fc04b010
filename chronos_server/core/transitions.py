"""Job state machine (spec §7.2) and what happens after a failed attempt (§5.5 G-30, §8).

The store applies these decisions as compare-and-set writes; this module only says which moves
are legal and which state a failure leads to. `now` and the jitter source are always passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from chronos_server.core.backoff import retry_delay_ms
from chronos_server.core.models import TERMINAL_JOB_STATUSES, Job, JobStatus, Trigger


class InvalidTransition(Exception):
    """A job move the §7.2 table does not allow."""

    def __init__(self, src: JobStatus, dst: JobStatus) -> None:
        super().__init__(f"job cannot move from {src.value!r} to {dst.value!r}")
        self.src = src
        self.dst = dst


_J = JobStatus

JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = MappingProxyType(
    {
        _J.PENDING: frozenset({_J.ADMITTING, _J.CANCELLED}),
        _J.RETRYING: frozenset({_J.ADMITTING, _J.CANCELLED}),
        # admitting -> pending is the sweeper's recovery of a pass that crashed (§7.2 task table).
        _J.ADMITTING: frozenset({_J.QUEUED, _J.CANCELLED, _J.PENDING}),
        _J.QUEUED: frozenset({_J.READY, _J.RUNNING, _J.CANCELLED}),
        _J.READY: frozenset({_J.RUNNING, _J.CANCELLED}),
        # running -> cancelled: the schedule was archived (G-30) or the job was replaced under
        # `overlap: cancel_previous`, and the attempt failed retryably.
        _J.RUNNING: frozenset({_J.COMPLETED, _J.RETRYING, _J.FAILED, _J.CANCELLED}),
        _J.COMPLETED: frozenset(),
        _J.FAILED: frozenset(),
        _J.CANCELLED: frozenset(),
    }
)


def check_job_transition(src: JobStatus, dst: JobStatus) -> None:
    """Raise InvalidTransition unless §7.2 allows `src -> dst`."""
    if dst not in JOB_TRANSITIONS[src]:
        raise InvalidTransition(src, dst)


@dataclass(frozen=True)
class FailureDecision:
    """Where a job goes after a failed attempt; `run_at` is set only for RETRYING."""

    status: JobStatus
    run_at: int | None


def decide_after_failure(
    *,
    attempt: int,
    max_retries: int,
    retryable: bool,
    retry_withdrawn: bool,
    now_ms: int,
    rng: random.Random,
) -> FailureDecision:
    """Decide the job's next state after attempt number `attempt` (1-based) failed.

    Total attempts are 1 + max_retries (§8.1). `retry_withdrawn`: no retry may follow — the
    schedule was archived (G-30), or, under `overlap: cancel_previous`, a newer job of the
    schedule replaced this one. A terminal failure or exhausted retries is FAILED even then (only
    a *retry* is replaced by CANCELLED).
    """
    if not retryable or attempt > max_retries:
        return FailureDecision(JobStatus.FAILED, None)
    if retry_withdrawn:
        return FailureDecision(JobStatus.CANCELLED, None)
    return FailureDecision(JobStatus.RETRYING, now_ms + retry_delay_ms(attempt, rng))


def trigger_for_attempt(attempt: int, first_trigger: Trigger) -> Trigger:
    """The execution trigger (G-03): the job's own trigger first, `system_retry` for every retry."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return first_trigger if attempt == 1 else Trigger.SYSTEM_RETRY


# A replay re-runs a finished job; one with an attempt in flight or still to come has its own.
REPLAYABLE_JOB_STATUSES = TERMINAL_JOB_STATUSES


def replay(original: Job, job_id: str, now: int) -> Job:
    """A new one-off job that runs `original` again, now: the same handler, payload, delivery,
    timeout and max_retries (and name and description), linked by `replay_of`. One-off (no
    schedule: an archived schedule must not cancel it; the schedule's `runs` is not spent) and
    without idempotency key (the original holds it). Its first execution's trigger is `manual`,
    as for a schedule run by hand. Raises `ValueError` unless `original` is finished."""
    if original.status not in REPLAYABLE_JOB_STATUSES:
        raise ValueError(f"a {original.status.value} job cannot be replayed")
    return replace(
        original,
        id=job_id,
        schedule_id=None,
        idempotency_key=None,
        status=JobStatus.PENDING,
        scheduled_for=now,
        run_at=now,
        attempt_count=0,
        last_execution_id=None,
        first_trigger=Trigger.MANUAL,
        created_at=now,
        updated_at=now,
        finished_at=None,
        held=False,
        last_error=None,
        replay_of=original.id,
    )
