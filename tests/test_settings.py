"""`settings_from`: the number of server processes (`--workers` / CHRONOS_WORKERS)."""

from __future__ import annotations

import pytest

from chronos_server.settings import SettingsError, settings_from

PG = "postgresql://postgres@127.0.0.1:5432/chronos"


def test_one_process_by_default() -> None:
    assert settings_from({}).workers == 1
    assert settings_from({"CHRONOS_DATABASE_URL": PG}).workers == 1


def test_the_flag_wins_over_the_environment() -> None:
    env = {"CHRONOS_DATABASE_URL": PG, "CHRONOS_WORKERS": "4"}
    assert settings_from(env).workers == 4
    assert settings_from(env, workers=2).workers == 2
    assert settings_from(env, workers=1).workers == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_the_environment_needs_a_positive_integer(raw: str) -> None:
    with pytest.raises(SettingsError, match="CHRONOS_WORKERS must be a positive integer"):
        settings_from({"CHRONOS_DATABASE_URL": PG, "CHRONOS_WORKERS": raw})


def test_the_flag_needs_a_positive_integer() -> None:
    with pytest.raises(SettingsError, match="--workers must be a positive integer"):
        settings_from({"CHRONOS_DATABASE_URL": PG}, workers=0)


def test_sqlite_is_one_process() -> None:
    assert settings_from({}, workers=1).workers == 1
    with pytest.raises(SettingsError, match="need PostgreSQL"):
        settings_from({"CHRONOS_WORKERS": "2"})


def test_metrics_log_format_and_access_log_from_flags_or_environment() -> None:
    defaults = settings_from({})
    assert (defaults.metrics_port, defaults.log_format, defaults.access_log) == (
        None,
        "text",
        False,
    )
    env = {"CHRONOS_METRICS_PORT": "9464", "CHRONOS_LOG_FORMAT": "json", "CHRONOS_ACCESS_LOG": "1"}
    from_env = settings_from(env)
    assert (from_env.metrics_port, from_env.log_format, from_env.access_log) == (9464, "json", True)
    flags = settings_from(env, metrics_port=9500, log_format="text", log_level="debug")
    assert (flags.metrics_port, flags.log_format, flags.log_level) == (9500, "text", "DEBUG")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHRONOS_METRICS_PORT": "x"}, "--metrics-port must be an integer"),
        ({"CHRONOS_METRICS_PORT": "70000"}, "--metrics-port must be 0-65535"),
        ({"CHRONOS_METRICS_PORT": "8080"}, "must not overlap the API's port 8080"),
        ({"CHRONOS_LOG_FORMAT": "xml"}, "--log-format must be text or json"),
        ({"CHRONOS_LOG_LEVEL": "LOUD"}, "--log-level must be one of"),
        (
            {"CHRONOS_DATABASE_URL": PG, "CHRONOS_WORKERS": "4", "CHRONOS_METRICS_PORT": "8077"},
            "must not overlap the API's port 8080",
        ),
    ],
)
def test_bad_metrics_and_log_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(env)


def test_each_process_of_workers_gets_its_own_metrics_port() -> None:
    from chronos_server.supervisor import metrics_port_env

    settings = settings_from({"CHRONOS_DATABASE_URL": PG}, workers=3, metrics_port=9464)
    ports = [metrics_port_env(settings, i)["CHRONOS_METRICS_PORT"] for i in range(3)]
    assert ports == ["9464", "9465", "9466"]
    off = settings_from({"CHRONOS_DATABASE_URL": PG}, workers=3)
    assert metrics_port_env(off, 0) == {"CHRONOS_METRICS_PORT": ""}
    free = settings_from({"CHRONOS_DATABASE_URL": PG}, workers=3, metrics_port=0)
    assert metrics_port_env(free, 2) == {"CHRONOS_METRICS_PORT": "0"}


def test_retention_default_per_status_and_off() -> None:
    from chronos_server.core.models import JobStatus
    from chronos_server.settings import DAY_MS, Retention, parse_retention

    assert settings_from({}).retention == Retention()
    assert Retention().completed_ms == 30 * DAY_MS and Retention().enabled
    mixed = settings_from({"CHRONOS_RETENTION": "7d, failed=90d, schedules=off"}).retention
    assert (mixed.completed_ms, mixed.failed_ms, mixed.cancelled_ms) == (
        7 * DAY_MS,
        90 * DAY_MS,
        7 * DAY_MS,
    )
    assert mixed.schedules_before(10**12) is None
    assert mixed.cutoffs(100 * DAY_MS)[JobStatus.FAILED] == 10 * DAY_MS
    only = parse_retention("off,failed=12h")
    assert only.cutoffs(DAY_MS) == {JobStatus.FAILED: DAY_MS // 2} and only.enabled
    assert not parse_retention("OFF").enabled
    for bad in ("30", "30y", "0d", "failed=", "running=1d", "1d,,2d", ""):
        with pytest.raises(SettingsError, match="CHRONOS_RETENTION"):
            parse_retention(bad)
