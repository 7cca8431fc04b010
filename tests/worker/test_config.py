"""`Chronos(...)` construction (§11.1, G-53) and `worker.handle()` (§11.2)."""

from __future__ import annotations

import logging
import random
from typing import Any

import httpx
import pytest

from chronos_worker import Chronos, ChronosConfigError, ChronosContext, ChronosError, Worker
from chronos_worker.chronos import reconfigure

from .fakes import exactly

KEY = "chrns_abc"


def test_defaults_and_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_API_KEY", "chrns_from_env")
    monkeypatch.setenv("CHRONOS_BASE_URL", "https://chronos.example.com/api//")
    settings = Chronos().worker.settings
    assert settings.api_key == "chrns_from_env"
    assert settings.base_url == "https://chronos.example.com/api"
    assert (settings.poll_wait_time_seconds, settings.retry_delay_ms, settings.concurrency) == (
        20,
        1000,
        1,
    )


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_API_KEY", "chrns_from_env")
    monkeypatch.setenv("CHRONOS_BASE_URL", "https://env.example.com")
    settings = Chronos(api_key=KEY, base_url="http://localhost:9000/").worker.settings
    assert (settings.api_key, settings.base_url) == (KEY, "http://localhost:9000")


def test_protocol_defaults_to_auto_then_the_environment_then_the_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Chronos(api_key=KEY).worker.settings.protocol == "auto"
    monkeypatch.setenv("CHRONOS_WORKER_PROTOCOL", "Poll")
    assert Chronos(api_key=KEY).worker.settings.protocol == "poll"
    assert Chronos(api_key=KEY, protocol="stream").worker.settings.protocol == "stream"
    assert reconfigure(Chronos(api_key=KEY), protocol="stream").worker.settings.protocol == (
        "stream"
    )


@pytest.mark.parametrize(
    ("concurrency", "prefetch", "limit"),
    [
        (1, None, 0),  # concurrency 1 is the plain one-job protocol
        (1, 10, 0),
        (2, None, 16),  # auto: 8 x concurrency
        (8, None, 64),
        (12, None, 88),  # capped so that concurrency + prefetch <= 100
        (30, None, 70),
        (60, None, 40),
        (100, None, 0),
        (150, None, 0),
        (8, 0, 0),  # off
        (8, 50, 50),  # as given
    ],
)
def test_prefetch_limit(concurrency: int, prefetch: int | None, limit: int) -> None:
    settings = Chronos(api_key=KEY, concurrency=concurrency, prefetch=prefetch).worker.settings
    assert (settings.prefetch, settings.prefetch_limit) == (prefetch, limit)


def test_prefetch_from_the_environment_and_kept_as_auto_by_reconfigure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auto = Chronos(api_key=KEY, concurrency=2)
    assert reconfigure(auto, concurrency=10).worker.settings.prefetch_limit == 80
    monkeypatch.setenv("CHRONOS_WORKER_PREFETCH", "5")
    assert Chronos(api_key=KEY, concurrency=4).worker.settings.prefetch_limit == 5
    assert Chronos(api_key=KEY, concurrency=4, prefetch=1).worker.settings.prefetch_limit == 1
    monkeypatch.setenv("CHRONOS_WORKER_PREFETCH", " auto ")
    assert Chronos(api_key=KEY, concurrency=4).worker.settings.prefetch_limit == 32
    for bad in ("-1", "lots", "1.5"):
        monkeypatch.setenv("CHRONOS_WORKER_PREFETCH", bad)
        message = f"CHRONOS_WORKER_PREFETCH must be an integer >= 0 or auto, got {bad!r}"
        with pytest.raises(ChronosConfigError, match=exactly(message)):
            Chronos(api_key=KEY, concurrency=4)


def test_base_url_defaults_to_local_server() -> None:
    assert Chronos(api_key=KEY).worker.settings.base_url == "http://127.0.0.1:8080"


def test_api_key_is_required() -> None:
    with pytest.raises(ChronosConfigError, match="api_key is required"):
        Chronos()


def test_api_key_must_start_with_prefix() -> None:
    with pytest.raises(ChronosConfigError, match='api_key must start with "chrns_"'):
        Chronos(api_key="sk_live_123")


def test_api_key_is_not_in_the_repr() -> None:
    assert KEY not in repr(Chronos(api_key=KEY).worker.settings)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("poll_wait_time_seconds", -1),
        ("poll_wait_time_seconds", 21),
        ("poll_wait_time_seconds", 1.5),
        ("poll_wait_time_seconds", True),
        ("poll_wait_time_seconds", "5"),
        ("retry_delay_ms", -1),
        ("retry_delay_ms", 10.0),
        ("concurrency", 0),
        ("concurrency", None),
        ("base_url", "ftp://chronos.example.com"),
        ("base_url", "not a url"),
        ("http_client", object()),
        ("rng", 42),
        ("protocol", "grpc"),
        ("protocol", 1),
        ("prefetch", -1),
        ("prefetch", "3"),
        ("prefetch", True),
    ],
)
def test_invalid_options_raise_config_error(option: str, value: Any) -> None:
    with pytest.raises(ChronosConfigError, match=option):
        Chronos(api_key=KEY, **{option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("poll_wait_time_seconds", 0),
        ("poll_wait_time_seconds", 20),
        ("retry_delay_ms", 0),
        ("concurrency", 8),
        ("prefetch", 0),
    ],
)
def test_boundary_values_are_accepted(option: str, value: int) -> None:
    options: dict[str, Any] = {option: value}
    assert getattr(Chronos(api_key=KEY, **options).worker.settings, option) == value


def test_config_error_is_a_chronos_error() -> None:
    assert issubclass(ChronosConfigError, ChronosError)


def test_worker_is_a_read_only_property() -> None:
    chronos = Chronos(api_key=KEY)
    assert isinstance(chronos.worker, Worker)
    assert chronos.worker is chronos.worker
    with pytest.raises(AttributeError):
        chronos.worker = chronos.worker  # type: ignore[misc]


def test_injected_client_logger_and_rng_are_kept_also_by_reconfigure() -> None:
    client = httpx.AsyncClient()
    logger = logging.getLogger("mine")
    rng = random.Random(1)
    chronos = Chronos(api_key=KEY, http_client=client, logger=logger, rng=rng)
    for settings in (chronos.worker.settings, reconfigure(chronos, concurrency=2).worker.settings):
        assert settings.http_client is client
        assert settings.logger is logger
        assert settings.rng is rng


# handle()


async def _job(ctx: ChronosContext) -> None:
    return None


def _worker() -> Worker:
    return Chronos(api_key=KEY).worker


def test_handle_chains_and_trims_the_name() -> None:
    worker = _worker()
    assert worker.handle("  a  ", _job).handle("b", _job) is worker
    assert dict(worker.handlers) == {"a": _job, "b": _job}


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_handle_requires_a_name(name: str) -> None:
    with pytest.raises(ChronosError, match=exactly("Handler name is required")):
        _worker().handle(name, _job)


def test_handle_name_length_limit() -> None:
    worker = _worker()
    worker.handle("x" * 255, _job)
    with pytest.raises(ChronosError, match=exactly("Handler name must be 255 characters or fewer")):
        worker.handle("y" * 256, _job)


def test_handle_rejects_duplicates_after_trimming() -> None:
    worker = _worker().handle("send-email", _job)
    with pytest.raises(ChronosError, match=exactly('Handler "send-email" is already registered')):
        worker.handle(" send-email ", _job)


@pytest.mark.parametrize("fn", [None, "not a function", 42])
def test_handle_requires_a_callable(fn: object) -> None:
    with pytest.raises(ChronosError, match=exactly('Handler "report" must be a function')):
        _worker().handle("report", fn)  # type: ignore[call-overload]


def test_handle_as_decorator_registers_and_returns_the_function() -> None:
    worker = _worker()

    @worker.handle("decorated")
    def decorated(ctx: ChronosContext) -> int:
        return 1

    assert worker.handlers["decorated"] is decorated
    assert decorated(None) == 1  # type: ignore[arg-type]


def test_handle_as_decorator_checks_the_name_at_once() -> None:
    with pytest.raises(ChronosError, match=exactly("Handler name is required")):
        _worker().handle(" ")


def test_handlers_view_is_read_only() -> None:
    worker = _worker().handle("a", _job)
    with pytest.raises(TypeError):
        worker.handlers["b"] = _job  # type: ignore[index]


@pytest.mark.parametrize(
    ("concurrency", "prefetch", "limit"),
    [
        (1, None, 0),  # still the plain one-job protocol
        (2, None, 198),  # auto: up to two of the server's batches of 100
        (8, None, 192),
        (32, None, 168),
        (150, None, 50),
        (250, None, 0),
        (8, 0, 0),  # off
        (8, 50, 50),  # as given
    ],
)
def test_channel_prefetch_limit(concurrency: int, prefetch: int | None, limit: int) -> None:
    settings = Chronos(api_key=KEY, concurrency=concurrency, prefetch=prefetch).worker.settings
    assert settings.channel_prefetch_limit == limit
