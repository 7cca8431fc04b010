"""Response classification (spec §9.7, G-14), the `retry_on_status` extension and Retry-After,
and how a Retry-After delay reaches the job's `run_at` through the store."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from chronos_server.core.models import (
    Delivery,
    DeliveryType,
    ExecutionStatus,
    HttpTarget,
    Job,
    JobStatus,
    Outcome,
    Trigger,
)
from chronos_server.delivery.classify import MAX_RETRY_AFTER_MS, classify_response, retry_after_ms
from chronos_server.store.sqlite import open_sqlite_store

NOW_MS = 1_800_000_000_000  # a whole second: HTTP dates have one-second resolution
HOUR_MS = 3_600_000


def http_date(ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(ms / 1000, tz=UTC), usegmt=True)


@pytest.mark.parametrize(
    ("status", "execution", "retryable"),
    [
        (200, ExecutionStatus.COMPLETED, True),
        (204, ExecutionStatus.COMPLETED, True),
        (500, ExecutionStatus.FAILED, True),
        (503, ExecutionStatus.FAILED, True),
        (400, ExecutionStatus.FAILED, False),
        (404, ExecutionStatus.FAILED, False),
        (408, ExecutionStatus.FAILED, False),
        (429, ExecutionStatus.FAILED, False),
        (301, ExecutionStatus.FAILED, False),
        (302, ExecutionStatus.FAILED, False),
        (101, ExecutionStatus.FAILED, False),
    ],
)
def test_status_table(status: int, execution: ExecutionStatus, retryable: bool) -> None:
    outcome = classify_response(status, "answer", retry_after="5", now_ms=NOW_MS)
    assert outcome.status is execution
    assert outcome.retryable is retryable
    assert outcome.http_status == status
    assert outcome.response_body == "answer"
    assert outcome.retry_after_ms is None  # Retry-After only counts for retry_on_status codes
    if execution is ExecutionStatus.COMPLETED:
        assert outcome.error is None
    else:
        assert outcome.error is not None and str(status) in outcome.error.message


def test_retry_on_status_makes_429_retryable_honouring_retry_after_seconds() -> None:
    outcome = classify_response(429, "", retry_on_status=(408, 429), retry_after="7")
    assert outcome.status is ExecutionStatus.FAILED
    assert outcome.retryable is True
    assert outcome.retry_after_ms == 7_000


def test_retry_on_status_without_retry_after_uses_the_backoff() -> None:
    outcome = classify_response(408, "", retry_on_status=(408,))
    assert outcome.retryable is True and outcome.retry_after_ms is None


def test_retry_on_status_only_covers_the_listed_codes() -> None:
    outcome = classify_response(404, "", retry_on_status=(429,), retry_after="7")
    assert outcome.retryable is False and outcome.retry_after_ms is None


def test_retry_on_status_honours_an_http_date() -> None:
    header = http_date(NOW_MS + 30_000)
    outcome = classify_response(429, "", retry_on_status=(429,), retry_after=header, now_ms=NOW_MS)
    assert outcome.retryable is True and outcome.retry_after_ms == 30_000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7_000),
        (" 12 ", 12_000),
        ("0", 0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Mon, 99 Foo 2026 25:61:00 GMT", None),
        ("99999", MAX_RETRY_AFTER_MS),
        (http_date(NOW_MS + 90_000), 90_000),
        (http_date(NOW_MS + 2 * HOUR_MS), HOUR_MS),  # capped at one hour
        (http_date(NOW_MS - 60_000), 0),  # in the past: retry now
    ],
)
def test_retry_after_parsing(header: str | None, expected: int | None) -> None:
    assert MAX_RETRY_AFTER_MS == HOUR_MS
    assert retry_after_ms(header, NOW_MS) == expected


def queued_push_job(account_id: str, retry_on_status: tuple[int, ...] = ()) -> Job:
    target = HttpTarget("https://hooks.example.com/x", "POST", {}, retry_on_status)
    return Job(
        id=f"job-{len(retry_on_status)}", account_id=account_id, schedule_id=None, name="push",
        description=None, handler=None, delivery=Delivery(DeliveryType.PUSH, target),
        payload=None, timeout=30, max_retries=3, idempotency_key=None,
        status=JobStatus.QUEUED, scheduled_for=NOW_MS, run_at=NOW_MS, attempt_count=0,
        last_execution_id=None, first_trigger=Trigger.API, created_at=NOW_MS,
        updated_at=NOW_MS,
    )  # fmt: skip


async def test_retry_after_sets_the_jobs_run_at_through_the_store() -> None:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        account, _ = await store.ensure_account("default", NOW_MS)
        job = queued_push_job(account.id, (429,))
        await store.insert_job(job)
        [claimed] = await store.start_push_jobs(NOW_MS, 10)
        outcome = classify_response(429, "slow down", retry_on_status=(429,), retry_after="7")
        failed_at = NOW_MS + 250
        await store.finish_execution(
            None, claimed.execution.id, outcome, failed_at, random.Random(1)
        )
        after = await store.get_job(account.id, job.id)
        assert after is not None
        assert after.status is JobStatus.RETRYING
        assert after.run_at == failed_at + 7_000  # not the 1-2 s backoff of attempt 1
        execution = await store.get_execution(account.id, claimed.execution.id)
        assert execution is not None
        assert execution.http_status == 429 and execution.response_body == "slow down"


async def test_without_retry_after_the_backoff_applies() -> None:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        account, _ = await store.ensure_account("default", NOW_MS)
        job = queued_push_job(account.id)
        await store.insert_job(job)
        [claimed] = await store.start_push_jobs(NOW_MS, 10)
        outcome = Outcome(ExecutionStatus.FAILED, http_status=503)
        await store.finish_execution(None, claimed.execution.id, outcome, NOW_MS, random.Random(1))
        after = await store.get_job(account.id, job.id)
        assert after is not None and after.status is JobStatus.RETRYING
        assert 1_000 <= after.run_at - NOW_MS <= 2_000  # spec §8.3, attempt 1
