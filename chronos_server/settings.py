"""Frozen server settings, parsed and validated once from argv and the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chronos_server.core.models import JobStatus

DEFAULT_DATABASE_URL = "sqlite:///chronos.db"
DAY_MS = 86_400_000


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window_seconds: float


@dataclass(frozen=True)
class Retention:
    """How long finished jobs (and their executions) are kept, per status, in ms (None: for
    ever); ended (archived, completed) schedules with no job left follow `schedules_ms`."""

    completed_ms: int | None = 30 * DAY_MS
    failed_ms: int | None = 30 * DAY_MS
    cancelled_ms: int | None = 30 * DAY_MS
    schedules_ms: int | None = 30 * DAY_MS

    @property
    def enabled(self) -> bool:
        return bool(self.cutoffs(0)) or self.schedules_ms is not None

    def cutoffs(self, now: int) -> dict[JobStatus, int]:
        """Per finished status kept for a while: jobs that finished before this instant go."""
        periods = {
            JobStatus.COMPLETED: self.completed_ms,
            JobStatus.FAILED: self.failed_ms,
            JobStatus.CANCELLED: self.cancelled_ms,
        }
        return {status: now - ms for status, ms in periods.items() if ms is not None}

    def schedules_before(self, now: int) -> int | None:
        return None if self.schedules_ms is None else now - self.schedules_ms

    def describe(self) -> str:
        def show(ms: int | None) -> str:
            if ms is None:
                return "off"
            for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
                if ms % size == 0:
                    return f"{ms // size}{unit}"
            return f"{ms}ms"

        return ", ".join(
            f"{name}={show(getattr(self, name + '_ms'))}"
            for name in ("completed", "failed", "cancelled", "schedules")
        )


_PERIOD = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_RETENTION_KEYS = ("completed", "failed", "cancelled", "schedules")


def _period_ms(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("off", "none", "forever"):
        return None
    m = _PERIOD.match(value)
    if not m or int(m.group(1)) < 1:
        raise SettingsError(
            f"CHRONOS_RETENTION: a period is N followed by s, m, h or d (N >= 1), or off;"
            f" got {text.strip()!r}"
        )
    return int(m.group(1)) * {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}[m.group(2)]


def parse_retention(text: str) -> Retention:
    """`30d` (every finished status and ended schedules), `off`, or a default and/or
    per-status periods: `30d,failed=90d`, `completed=7d,failed=off`, `schedules=90d`."""
    default: int | None = 30 * DAY_MS
    specific: dict[str, int | None] = {}
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise SettingsError(f"CHRONOS_RETENTION must not hold empty items, got {text!r}")
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            default = _period_ms(item)
            continue
        key = key.strip().lower()
        if key not in _RETENTION_KEYS:
            raise SettingsError(
                f"CHRONOS_RETENTION: {key!r} is not one of {', '.join(_RETENTION_KEYS)}"
            )
        specific[key] = _period_ms(value)
    return Retention(**{f"{key}_ms": specific.get(key, default) for key in _RETENTION_KEYS})


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = DEFAULT_DATABASE_URL
    bootstrap_api_key: str | None = None
    bootstrap_signing_secret: str | None = None
    rate_limit: RateLimit | None = RateLimit(100, 10.0)
    allow_http_targets: bool = False
    allow_private_targets: bool = False
    shutdown_grace_seconds: float = 10.0
    push_concurrency: int = 256
    push_user_agent: str = "chronos.sh/1.0"
    auth_cache_seconds: float = 5.0
    # Connections served at once; None = sized from the open-files limit at start-up.
    max_connections: int | None = None
    # Server processes sharing the port (`--workers`); above 1 needs PostgreSQL.
    workers: int = 1
    # Serve the worker channel (`GET /v1/worker/stream`); off, it answers 404 like any unknown
    # route and workers use the long-poll.
    worker_stream: bool = True
    # Bind with SO_REUSEPORT: set in the processes `--workers` starts, never by the user.
    reuse_port: bool = False
    # `--metrics-port`: Prometheus metrics on their own listener (same host); None = off.
    # With `--workers N`, process i (from 0) listens on metrics_port + i.
    metrics_port: int | None = None
    # `--log-format`: `text` (one readable line) or `json` (one JSON object per line).
    log_format: str = "text"
    # `--access-log`: one INFO line per HTTP request (logger `chronos.access`).
    access_log: bool = False
    log_level: str = "INFO"
    # CHRONOS_RETENTION: how long finished jobs and ended schedules are kept.
    retention: Retention = Retention()


_RATE = re.compile(r"^(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(s|m|h)?$")


def parse_rate_limit(text: str) -> RateLimit | None:
    """`100/10s`, `600/1m`, `off`."""
    if text.strip().lower() in ("off", "none", "0", "false"):
        return None
    m = _RATE.match(text.strip().lower())
    if not m:
        raise SettingsError(f"CHRONOS_RATE_LIMIT must look like 100/10s or off, got {text!r}")
    scale = {"s": 1, "m": 60, "h": 3600}[m.group(3) or "s"]
    limit, window = int(m.group(1)), float(m.group(2)) * scale
    if limit < 1 or window <= 0:
        raise SettingsError("CHRONOS_RATE_LIMIT needs a positive limit and window")
    return RateLimit(limit, window)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not 0 <= value <= 3600:
        raise SettingsError(f"{name} must be between 0 and 3600, got {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}") from exc
    if value < 1:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}")
    return value


def check_workers(workers: int, database_url: str) -> None:
    if workers < 1:
        raise SettingsError(f"--workers must be a positive integer, got {workers}")
    if workers > 1 and not database_url.startswith(("postgresql:", "postgres:")):
        raise SettingsError(
            f"{workers} server processes (--workers / CHRONOS_WORKERS) need PostgreSQL:"
            " SQLite is served by one process; use --workers 1"
        )


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise SettingsError(f"--log-format must be text or json, got {value!r}")
    return value


def check_log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise SettingsError(
            f"--log-level must be one of {', '.join(LOG_LEVELS)} (any case), got {value!r}"
        )
    return value.upper()


def _metrics_port(raw: str | int | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        port = int(raw)
    except ValueError as exc:
        raise SettingsError(f"--metrics-port must be an integer, got {raw!r}") from exc
    if not 0 <= port <= 65535:
        raise SettingsError(f"--metrics-port must be 0-65535, got {port}")
    return port


def check_api_key_format(key: str) -> None:
    if not re.fullmatch(r"chrns_[A-Za-z0-9]{20,}", key):
        raise SettingsError(
            "CHRONOS_BOOTSTRAP_API_KEY must look like chrns_ + 40 base62 characters"
        )


def check_signing_secret_format(secret: str) -> None:
    import base64
    import binascii

    if not secret.startswith("whsec_"):
        raise SettingsError("CHRONOS_BOOTSTRAP_SIGNING_SECRET must start with whsec_")
    try:
        decoded = base64.b64decode(secret[len("whsec_") :], validate=True)
    except binascii.Error as exc:
        raise SettingsError("CHRONOS_BOOTSTRAP_SIGNING_SECRET must be whsec_ + base64") from exc
    if not decoded:
        raise SettingsError("CHRONOS_BOOTSTRAP_SIGNING_SECRET must not be empty")


def settings_from(
    env: Mapping[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    workers: int | None = None,
    metrics_port: int | None = None,
    log_format: str | None = None,
    access_log: bool | None = None,
    log_level: str | None = None,
) -> Settings:
    """Command-line values win over CHRONOS_* environment variables, which win over defaults."""
    raw_port = port if port is not None else env.get("CHRONOS_PORT", "8080")
    try:
        port_value = int(raw_port)
    except ValueError as exc:
        raise SettingsError(f"port must be an integer, got {raw_port!r}") from exc
    if not 0 <= port_value <= 65535:
        raise SettingsError(f"port must be 0-65535, got {port_value}")
    key = env.get("CHRONOS_BOOTSTRAP_API_KEY") or None
    if key:
        check_api_key_format(key)
    secret = env.get("CHRONOS_BOOTSTRAP_SIGNING_SECRET") or None
    if secret:
        check_signing_secret_format(secret)
    url = database_url or env.get("CHRONOS_DATABASE_URL", DEFAULT_DATABASE_URL)
    processes = workers if workers is not None else _positive_int(env, "CHRONOS_WORKERS", 1)
    check_workers(processes, url)
    metrics = _metrics_port(
        metrics_port if metrics_port is not None else env.get("CHRONOS_METRICS_PORT")
    )
    if metrics:  # with N processes, metrics ports P .. P+N-1 (supervisor.metrics_port_env)
        if metrics + processes - 1 > 65535:
            raise SettingsError(f"--metrics-port {metrics} + {processes} processes passes 65535")
        if metrics <= port_value < metrics + processes:
            raise SettingsError(
                f"--metrics-port must not overlap the API's port {port_value} (process i of "
                f"--workers listens on metrics port + i)"
            )
    return Settings(
        host=host or env.get("CHRONOS_HOST", "127.0.0.1"),
        port=port_value,
        database_url=url,
        bootstrap_api_key=key,
        bootstrap_signing_secret=secret,
        rate_limit=parse_rate_limit(env.get("CHRONOS_RATE_LIMIT", "100/10s")),
        allow_http_targets=_flag(env, "CHRONOS_ALLOW_HTTP_TARGETS"),
        allow_private_targets=_flag(env, "CHRONOS_ALLOW_PRIVATE_TARGETS"),
        push_concurrency=_positive_int(env, "CHRONOS_PUSH_CONCURRENCY", 256),
        push_user_agent=env.get("CHRONOS_PUSH_USER_AGENT", "chronos.sh/1.0"),
        auth_cache_seconds=_seconds(env, "CHRONOS_AUTH_CACHE_SECONDS", 5.0),
        shutdown_grace_seconds=_seconds(env, "CHRONOS_SHUTDOWN_GRACE_SECONDS", 10.0),
        max_connections=_positive_int(env, "CHRONOS_MAX_CONNECTIONS", 0) or None,
        workers=processes,
        worker_stream=env.get("CHRONOS_WORKER_STREAM", "on").strip().lower()
        not in ("off", "0", "false", "no"),
        metrics_port=metrics,
        log_format=check_log_format(log_format or env.get("CHRONOS_LOG_FORMAT", "text")),
        access_log=access_log if access_log else _flag(env, "CHRONOS_ACCESS_LOG"),
        log_level=check_log_level(log_level or env.get("CHRONOS_LOG_LEVEL", "INFO")),
        retention=parse_retention(env.get("CHRONOS_RETENTION", "30d")),
    )
