"""Job state machine (spec §7.2) and what happens after a failed attempt (§5.5 G-30, §8).

The store applies these decisions as compare-and-set writes; this module only says which moves
are legal and which state a failure leads to. `now` and the jitter source are always passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from chronos_server.core.backoff import retry_delay_ms
from chronos_server.core.models import JobStatus, Trigger


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
