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
