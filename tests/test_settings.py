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
