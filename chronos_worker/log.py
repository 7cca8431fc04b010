"""Adapts the `logger` option to the one interface the worker logs through.

The Node SDK calls `logger.info(message, meta)`: message first, then a dict of details. Two
kinds of `logger` are therefore accepted:

* a `logging.Logger` / `logging.LoggerAdapter` (default: `logging.getLogger("chronos_worker")`):
  the details are appended to the message as `key=value` pairs and also passed as
  `extra={"chronos": meta}` for structured handlers;
* any object with `debug/info/warning/error(message, meta)` methods (`warn` is accepted in place
  of `warning`, as in the Node SDK): called as is.

A stdlib logger's level is checked before the line is formatted, and `Log.enabled(level)` lets
the per-job call sites skip building their details when nobody would see them (a Node-style
logger decides for itself, so for it every level is enabled).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

Meta = Mapping[str, object]


class ChronosLogger(Protocol):
    """A Node-style logger: `method(message, meta)`."""

    def debug(self, message: str, meta: Meta, /) -> object: ...
    def info(self, message: str, meta: Meta, /) -> object: ...
    def warning(self, message: str, meta: Meta, /) -> object: ...
    def error(self, message: str, meta: Meta, /) -> object: ...


LoggerLike = logging.Logger | logging.LoggerAdapter[Any] | ChronosLogger

DEFAULT_LOGGER_NAME = "chronos_worker"


class Log:
    """The worker's logging front: `log.info("Job completed", job_id=...)`."""

    def __init__(self, logger: LoggerLike | None) -> None:
        self._target: LoggerLike = logger or logging.getLogger(DEFAULT_LOGGER_NAME)
        target = self._target
        self._stdlib = (
            target if isinstance(target, logging.Logger | logging.LoggerAdapter) else None
        )

    def enabled(self, level: int) -> bool:
        """Whether a line at `level` (`logging.DEBUG`, ...) would be emitted."""
        return self._stdlib is None or self._stdlib.isEnabledFor(level)

    def debug(self, message: str, **meta: object) -> None:
        self._emit(logging.DEBUG, "debug", message, meta)

    def info(self, message: str, **meta: object) -> None:
        self._emit(logging.INFO, "info", message, meta)

    def warning(self, message: str, **meta: object) -> None:
        self._emit(logging.WARNING, "warning", message, meta)

    def error(self, message: str, **meta: object) -> None:
        self._emit(logging.ERROR, "error", message, meta)

    def _emit(self, level: int, method: str, message: str, meta: dict[str, object]) -> None:
        target = self._target
        if self._stdlib is not None:
            if not self._stdlib.isEnabledFor(level):
                return
            details = " ".join(f"{key}={value}" for key, value in meta.items())
            text = f"{message} {details}" if details else message
            self._stdlib.log(level, "%s", text, extra={"chronos": meta})
            return
        fn = getattr(target, method, None)
        if fn is None and method == "warning":
            fn = getattr(target, "warn", None)
        if callable(fn):
            fn(message, meta)
