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
