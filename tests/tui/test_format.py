"""Pure formatting: table-driven, no app."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from chronos_tui import format as fmt
from chronos_worker.models import ExecutionError, ExecutionStatus, JobStatus
from tests.tui.fakes import NOW, make_execution, make_job

JOB_STATES = [s.value for s in JobStatus]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (999, "999ms"), (1000, "1s"), (59_999, "59s"), (60_000, "1m 00s"),
     (95_000, "1m 35s"), (3_600_000, "1h 00m"), (90_061_000, "1d 1h")],
)  # fmt: skip
def test_span(ms: int, text: str) -> None:
    assert fmt.span(ms) == text


@pytest.mark.parametrize(
    ("ms", "text"), [(None, "—"), (12, "12 ms"), (1250, "1.25 s"), (185_000, "3m 05s")]
)
def test_duration(ms: int | None, text: str) -> None:
    assert fmt.duration(ms) == text


def test_relative_and_clock() -> None:
    assert fmt.relative(NOW + timedelta(seconds=3), NOW) == "in 3s"
    assert fmt.relative(NOW - timedelta(seconds=65), NOW) == "1m 05s ago"
    assert fmt.relative(NOW, NOW) == "now"
    assert fmt.relative(None, NOW) == "—"
    assert fmt.clock(NOW, UTC, NOW) == "09:00:00"
    assert fmt.clock(NOW - timedelta(days=1), UTC, NOW) == "01-14 09:00"
    assert fmt.clock(NOW, UTC) == "2026-01-15 09:00:00"


@pytest.mark.parametrize(
    ("typed", "statuses", "handler"),
    [
        ("", (), None),
        ("failed timeout", ("failed",), "timeout"),  # timeout is not a job state
        ("ready send-report", ("ready",), "send-report"),
        ("failed,cancelled failed", ("failed", "cancelled"), None),
        ("status=ready handler=failed", ("ready",), "failed"),  # a handler named like a state
    ],
)
def test_parse_filter(typed: str, statuses: tuple[str, ...], handler: str | None) -> None:
    assert fmt.parse_filter(typed, JOB_STATES) == fmt.Filter(statuses, handler)


def test_filter_describe() -> None:
    assert fmt.Filter().describe() == "no filter"
    assert fmt.Filter(("failed", "timeout")).describe() == "status failed | timeout"
    assert fmt.Filter((), "abc").describe("job") == "job abc"


def test_outcome_prefers_the_error_then_http_status_then_result() -> None:
    job = make_job("a", "alpha", JobStatus.FAILED, 10)
    failed = make_execution(
        job, ExecutionStatus.FAILED, 5, http_status=500, error=ExecutionError(message="bad\nthing")
    )
    assert fmt.outcome(failed) == "HTTP 500 bad thing"
    done = make_execution(job, ExecutionStatus.COMPLETED, 5, result={"n": "x" * 100})
    assert fmt.outcome(done, 20) == '{"n":"' + "x" * 13 + "…"  # 20 characters


def test_oldest_ready_gets_louder_with_age() -> None:
    assert fmt.oldest_ready(None).plain == "—"
    assert fmt.oldest_ready(3_000).plain == "3s"
    assert "yellow" in str(fmt.oldest_ready(15_000).style)
    assert "red" in str(fmt.oldest_ready(120_000).style)
