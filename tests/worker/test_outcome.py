"""Report bodies built from handler outcomes: G-12 result rules, G-42, truncation limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos_worker import ChronosNonRetryableError
from chronos_worker.outcome import (
    MAX_MESSAGE_BYTES,
    MAX_RESULT_BYTES,
    MAX_STACK_BYTES,
    TRUNCATION_MARK,
    completed_report,
    failed_report,
    truncate_head,
    truncate_tail,
)


def _body(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_completed_report_keeps_a_json_result() -> None:
    report = completed_report({"synced": 12, "name": "café"})
    assert _body(report.body) == {"status": "completed", "result": {"synced": 12, "name": "café"}}
    assert report.warning is None


@pytest.mark.parametrize("result", [{1, 2}, float("nan"), object(), {"nested": b"bytes"}])
def test_unserialisable_result_becomes_null_with_a_warning(result: object) -> None:
    report = completed_report(result)
    assert _body(report.body) == {"status": "completed", "result": None}
    assert report.warning is not None and "not JSON-serialisable" in report.warning


def test_result_size_limit_is_64_kb_serialised() -> None:
    at_limit = "x" * (MAX_RESULT_BYTES - 2)  # the quotes make it exactly 64 KiB
    assert _body(completed_report(at_limit).body)["result"] == at_limit
    over = completed_report(at_limit + "x")
    assert _body(over.body)["result"] is None
    assert over.warning is not None and "65537 bytes" in over.warning


def test_none_result_is_reported_as_null_without_warning() -> None:
    report = completed_report(None)
    assert _body(report.body) == {"status": "completed", "result": None}
    assert report.warning is None


def test_failed_report_fields() -> None:
    body = _body(failed_report(_raised(ValueError("bad input"))).body)
    assert body["status"] == "failed"
    assert body["retryable"] is True
    assert body["error"]["name"] == "ValueError"
    assert body["error"]["message"] == "bad input"
    assert "raise exc" in body["error"]["stack"]


def test_non_retryable_failure() -> None:
    body = _body(failed_report(_raised(ChronosNonRetryableError("nope"))).body)
    assert body["retryable"] is False


def test_empty_message_falls_back_to_the_type_name() -> None:
    body = _body(failed_report(_raised(RuntimeError())).body)
    assert body["error"]["message"] == "RuntimeError"


def test_long_message_and_stack_are_truncated() -> None:
    body = _body(failed_report(_raised(ValueError("m" * 20000 + "TAIL"))).body)
    message, stack = body["error"]["message"], body["error"]["stack"]
    assert message == "m" * MAX_MESSAGE_BYTES
    assert len(stack.encode()) <= MAX_STACK_BYTES
    assert stack.startswith(TRUNCATION_MARK)
    assert stack.rstrip().endswith("TAIL")  # the end of a traceback is what matters


def test_truncation_counts_utf8_bytes_and_never_splits_a_character() -> None:
    text = "é" * 3000  # 6000 bytes
    head = truncate_head(text, 4096)
    assert head == "é" * 2048
    limit = len(TRUNCATION_MARK) + 15  # room for 7.5 "é": the split one is dropped
    tail = truncate_tail("a" + "é" * 20, limit)
    assert tail == TRUNCATION_MARK + "é" * 7
    assert truncate_tail("abcdef", 4) == "cdef"  # too small for the marker


def test_short_text_is_untouched() -> None:
    assert truncate_head("abc", 3) == "abc"
    assert truncate_tail("abc", 3) == "abc"
