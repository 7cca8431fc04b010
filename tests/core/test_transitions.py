"""Job state machine (§7.2), failure decisions (§8, G-30) and execution triggers (G-03)."""

from __future__ import annotations

import itertools
import random

import pytest

from chronos_server.core.models import JobStatus, Trigger
from chronos_server.core.transitions import (
    JOB_TRANSITIONS,
    FailureDecision,
    InvalidTransition,
    check_job_transition,
    decide_after_failure,
    trigger_for_attempt,
)

P, AD, Q, RD, RN, RT, C, F, X = (
    JobStatus.PENDING,
    JobStatus.ADMITTING,
    JobStatus.QUEUED,
    JobStatus.READY,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)

# Written out from the §7.2 tables, independently of the module's mapping.
ALLOWED = {
    (P, AD),
    (RT, AD),
    (AD, Q),
    (AD, X),
    (AD, P),  # sweeper recovers a stuck admission pass
    (Q, RD),
    (Q, RN),
    (RD, RN),
    (RN, C),
    (RN, RT),
    (RN, F),
    (P, X),
    (AD, X),
    (Q, X),
    (RD, X),
    (RT, X),
    (RN, X),
}


@pytest.mark.parametrize(("src", "dst"), sorted(ALLOWED))
def test_allowed(src: JobStatus, dst: JobStatus) -> None:
    check_job_transition(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [pair for pair in itertools.product(JobStatus, JobStatus) if pair not in ALLOWED],
)
def test_refused(src: JobStatus, dst: JobStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"{src.value}.*{dst.value}"):
        check_job_transition(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(P, RN), (RD, Q), (Q, C), (RT, RN), (RN, RN), (C, X), (F, RT), (X, P), (RN, P)],
)
def test_refused_samples(src: JobStatus, dst: JobStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_job_transition(src, dst)


def test_table_covers_every_status_and_terminals_are_dead_ends() -> None:
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert all(not JOB_TRANSITIONS[s] for s in (C, F, X))


# --- failures ------------------------------------------------------------------------------------

NOW = 1_000_000


class _MaxJitter(random.Random):
    def randint(self, a: int, b: int) -> int:
        return b


def decide(
    attempt: int, max_retries: int = 3, retryable: bool = True, archived: bool = False
) -> FailureDecision:
    return decide_after_failure(
        attempt=attempt,
        max_retries=max_retries,
        retryable=retryable,
        retry_withdrawn=archived,
        now_ms=NOW,
        rng=_MaxJitter(),
    )


@pytest.mark.parametrize(
    ("attempt", "max_retries", "retryable", "archived", "expected"),
    [
        # §8.3 worked example, max_retries 3 (run_at = now + the maximal 2*base delay here).
        (1, 3, True, False, FailureDecision(RT, NOW + 2_000)),
        (2, 3, True, False, FailureDecision(RT, NOW + 4_000)),
        (3, 3, True, False, FailureDecision(RT, NOW + 8_000)),
        (4, 3, True, False, FailureDecision(F, None)),
        # max_retries 0: the first failure is final.
        (1, 0, True, False, FailureDecision(F, None)),
        # Terminal failure (push 4xx, retryable: false) fails at once, archived or not.
        (1, 3, False, False, FailureDecision(F, None)),
        (1, 3, False, True, FailureDecision(F, None)),
        # G-30: archived schedule turns a retry into a cancel; exhausted retries still fail.
        (1, 3, True, True, FailureDecision(X, None)),
        (3, 3, True, True, FailureDecision(X, None)),
        (4, 3, True, True, FailureDecision(F, None)),
        (13, 25, True, False, FailureDecision(RT, NOW + 3_600_000)),
        (26, 25, True, False, FailureDecision(F, None)),
    ],
)
def test_decide_after_failure(
    attempt: int, max_retries: int, retryable: bool, archived: bool, expected: FailureDecision
) -> None:
    assert decide(attempt, max_retries, retryable, archived) == expected


def test_retry_delay_uses_the_injected_rng() -> None:
    decisions = {
        decide_after_failure(
            attempt=1,
            max_retries=3,
            retryable=True,
            retry_withdrawn=False,
            now_ms=NOW,
            rng=random.Random(seed),
        ).run_at
        for seed in range(50)
    }
    assert len(decisions) > 1
    assert all(d is not None and NOW + 1_000 <= d <= NOW + 2_000 for d in decisions)


# --- triggers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "first", "expected"),
    [
        (1, Trigger.SCHEDULE, Trigger.SCHEDULE),
        (1, Trigger.API, Trigger.API),
        (1, Trigger.MANUAL, Trigger.MANUAL),
        (2, Trigger.SCHEDULE, Trigger.SYSTEM_RETRY),
        (2, Trigger.API, Trigger.SYSTEM_RETRY),
        (4, Trigger.MANUAL, Trigger.SYSTEM_RETRY),
    ],
)
def test_trigger_for_attempt(attempt: int, first: Trigger, expected: Trigger) -> None:
    assert trigger_for_attempt(attempt, first) is expected


def test_trigger_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        trigger_for_attempt(0, Trigger.API)
