"""The `logger` option: stdlib loggers and Node-style `method(message, meta)` objects."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from chronos_worker.log import Log


def test_stdlib_logger_gets_meta_in_the_text_and_as_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chronos_worker")
    Log(None).warning("Report failed; retrying", job_id="j1", attempt=2)
    [record] = caplog.records
    assert record.name == "chronos_worker"
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "Report failed; retrying job_id=j1 attempt=2"
    assert getattr(record, "chronos", None) == {"job_id": "j1", "attempt": 2}


def test_node_style_logger_with_only_warn_is_accepted() -> None:
    calls: list[tuple[str, Mapping[str, object]]] = []

    class NodeLogger:
        def debug(self, message: str, meta: Mapping[str, object]) -> None: ...
        def info(self, message: str, meta: Mapping[str, object]) -> None: ...
        def error(self, message: str, meta: Mapping[str, object]) -> None: ...

        def warn(self, message: str, meta: Mapping[str, object]) -> None:
            calls.append((message, meta))

    Log(NodeLogger()).warning("careful", job_id="j1")  # type: ignore[arg-type]
    assert calls == [("careful", {"job_id": "j1"})]


def test_a_line_below_the_stdlib_level_is_not_even_formatted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chronos_worker")
    formatted: list[str] = []

    class Detail:
        def __str__(self) -> str:
            formatted.append("yes")
            return "detail"

    log = Log(None)
    assert not log.enabled(logging.DEBUG)
    assert log.enabled(logging.INFO)
    log.debug("Job claimed", detail=Detail())
    assert formatted == []
    assert caplog.records == []
    log.info("Job completed", detail=Detail())
    assert formatted == ["yes"]
    assert caplog.records[0].getMessage() == "Job completed detail=detail"


def test_a_node_style_logger_decides_for_itself() -> None:
    class NodeLogger:
        def debug(self, message: str, meta: Mapping[str, object]) -> None: ...
        def info(self, message: str, meta: Mapping[str, object]) -> None: ...
        def warning(self, message: str, meta: Mapping[str, object]) -> None: ...
        def error(self, message: str, meta: Mapping[str, object]) -> None: ...

    assert Log(NodeLogger()).enabled(logging.DEBUG)
