"""`chronos-worker`: loading `module:attr`, applying overrides, exit codes and signals."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from chronos_worker import Chronos, ChronosConfigError, ChronosContext, Worker
from chronos_worker.cli import (
    build_chronos,
    build_parser,
    load_target,
    run_cli,
    run_until_signalled,
)
from chronos_worker.context import parse_job

from .conftest import MakeChronos
from .fakes import FakeServer, error_response

HANDLER_MODULE = """
from chronos_worker import Chronos

chronos = Chronos({args})

@chronos.worker.handle("mod.job")
async def job(ctx):
    return "ran"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cwd; sys.path and the modules written there are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("cw_"):
            del sys.modules[name]


def write_module(project: Path, source: str) -> str:
    name = f"cw_{uuid.uuid4().hex[:8]}"
    (project / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return name


def test_cli_values_override_the_module_object_which_stays_untouched(project: Path) -> None:
    name = write_module(project, HANDLER_MODULE.format(args="retry_delay_ms=250"))
    chronos = build_chronos(
        f"{name}:chronos",
        server="http://chronos.internal:9000/",
        api_key="chrns_from_cli",
        concurrency=3,
        poll_wait=5,
        protocol="poll",
    )
    module = sys.modules[name]
    settings = chronos.worker.settings
    assert settings.base_url == "http://chronos.internal:9000"
    assert settings.api_key == "chrns_from_cli"
    assert (settings.concurrency, settings.poll_wait_time_seconds) == (3, 5)
    assert settings.protocol == "poll"
    assert settings.retry_delay_ms == 250  # not on the command line: kept from the module
    assert dict(chronos.worker.handlers) == {"mod.job": module.job}
    assert chronos is not module.chronos
    assert module.chronos.worker.settings.concurrency == 1
    assert sys.path[0] == str(project)


def test_module_settings_are_kept_when_the_cli_gives_none(project: Path) -> None:
    args = 'api_key="chrns_hard", base_url="http://hard:1", concurrency=2'
    name = write_module(project, HANDLER_MODULE.format(args=args))
    settings = build_chronos(f"{name}:chronos").worker.settings
    assert (settings.api_key, settings.base_url, settings.concurrency) == (
        "chrns_hard",
        "http://hard:1",
        2,
    )
    overridden = build_chronos(f"{name}:chronos", api_key="chrns_cli").worker.settings
    assert overridden.api_key == "chrns_cli"


def test_target_may_be_a_worker_a_factory_or_a_dotted_attribute(project: Path) -> None:
    name = write_module(
        project,
        """
        from chronos_worker import Chronos

        chronos = Chronos(api_key="chrns_x")
        chronos.worker.handle("a", print)
        worker = chronos.worker

        def make():
            return chronos

        class Namespace:
            inner = chronos
        """,
    )
    worker = load_target(f"{name}:worker")
    module = sys.modules[name]
    assert worker is module.worker
    assert load_target(f"{name}:make") is module.chronos
    assert load_target(f"{name}:Namespace.inner") is module.chronos
    assert isinstance(worker, Worker)
    assert set(build_chronos(f"{name}:make").worker.handlers) == {"a"}


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("", "must look like module:attr"),
        (":missing", "has no attribute 'missing'"),
        (":NUMBER", "is a int, not a Chronos or Worker"),
        (":factory", "is a str, not a Chronos or Worker"),
    ],
)
def test_unusable_targets_raise_config_error(project: Path, suffix: str, message: str) -> None:
    name = write_module(project, "NUMBER = 3\ndef factory():\n    return 'nope'\n")
    with pytest.raises(ChronosConfigError, match=message):
        load_target(f"{name}{suffix}")


def test_missing_module_is_a_config_error(project: Path) -> None:
    with pytest.raises(ChronosConfigError, match=r"Cannot import module 'cw_absent\.sub'"):
        load_target("cw_absent.sub:chronos")


def test_missing_import_inside_the_module_propagates(project: Path) -> None:
    name = write_module(project, "import cw_not_installed_anywhere\n")
    with pytest.raises(ModuleNotFoundError):
        load_target(f"{name}:chronos")


def test_api_key_from_cli_reaches_a_module_that_builds_chronos_without_arguments(
    project: Path,
) -> None:
    name = write_module(project, HANDLER_MODULE.format(args=""))
    chronos = build_chronos(f"{name}:chronos", api_key="chrns_only_on_cli")
    assert chronos.worker.settings.api_key == "chrns_only_on_cli"


async def test_demo_module_is_a_loadable_target(project: Path) -> None:
    chronos = build_chronos("chronos_worker.demo:chronos", api_key="chrns_demo")
    handler = chronos.worker.handlers["demo.tick"]
    ctx = parse_job(
        {
            "job_id": "j",
            "execution_id": "e",
            "handler": "demo.tick",
            "payload": {"n": 1},
            "attempt": 1,
            "scheduled_for": "2026-01-15T09:00:00.000Z",
            "timeout": 30,
            "lease_expires_at": "2026-01-15T09:00:30.000Z",
        }
    )
    result = await handler(ctx)  # type: ignore[misc]
    assert result["ok"] is True
    assert result["handled_at"].endswith("Z")


@pytest.fixture
def httpx_log_level() -> Iterator[None]:
    """`run_cli` quietens the httpx logger; put it back for the other tests."""
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    yield
    httpx_logger.setLevel(level)


@pytest.mark.usefixtures("httpx_log_level")
def test_run_cli_exit_codes_for_bad_input(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli(["--concurrency", "many", "mod:attr"])
    assert caught.value.code == 2
    assert run_cli(["no-colon-here"]) == 2
    name = write_module(project, HANDLER_MODULE.format(args=""))
    assert run_cli(["--api-key", "wrong_prefix", f"{name}:chronos"]) == 2
    assert 'api_key must start with "chrns_"' in capsys.readouterr().err


async def _blocking_worker(
    chronos: Chronos, server: FakeServer
) -> tuple[trio.Event, trio.Event, Worker]:
    started, release = trio.Event(), trio.Event()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        started.set()
        await release.wait()

    server.add_job()
    return started, release, chronos.worker


async def test_first_signal_stops_gracefully_and_exits_0(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    started, release, worker = await _blocking_worker(make_chronos(), server)
    send, receive = trio.open_memory_channel[int](2)
    exits: list[int] = []
    codes: list[int] = []

    async def run() -> None:
        codes.append(await run_until_signalled(worker, receive, exits.append))

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await started.wait()
            await send.send(signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()
            assert codes == []  # still waiting for the running handler
            release.set()
    assert codes == [0]
    assert exits == []
    assert len(server.reports) == 1
    assert len(server.claims) == 1


async def test_second_signal_exits_1_at_once(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    started, release, worker = await _blocking_worker(make_chronos(), server)
    send, receive = trio.open_memory_channel[int](2)
    exits: list[int] = []

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_until_signalled, worker, receive, exits.append)
            await started.wait()
            await send.send(signal.SIGINT)
            await send.send(signal.SIGINT)
            await trio.testing.wait_all_tasks_blocked()
            assert exits == [1]
            assert server.reports == []  # the handler was still running
            release.set()  # let the test's nursery finish (a real run has exited by now)


async def test_auth_error_exits_3_with_a_message(
    server: FakeServer,
    make_chronos: MakeChronos,
    autojump_clock: trio.abc.Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", print)
    server.claim_script.append(error_response(401, "unauthorized"))
    _, receive = trio.open_memory_channel[int](1)
    with trio.fail_after(600):
        assert await run_until_signalled(chronos.worker, receive) == 3
    assert "API key refused by the server" in capsys.readouterr().err


def test_protocol_flag_takes_auto_stream_or_poll() -> None:
    parser = build_parser()
    assert parser.parse_args(["m:c"]).protocol is None  # the settings' default: auto
    assert parser.parse_args(["--protocol", "stream", "m:c"]).protocol == "stream"
    with pytest.raises(SystemExit):
        parser.parse_args(["--protocol", "grpc", "m:c"])


def test_prefetch_flag_is_parsed_and_applied(project: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["m:c"]).prefetch is None  # the settings' default: auto
    assert parser.parse_args(["--prefetch", "0", "m:c"]).prefetch == 0
    name = write_module(project, HANDLER_MODULE.format(args='api_key="chrns_k"'))
    settings = build_chronos(f"{name}:chronos", concurrency=4, prefetch=6).worker.settings
    assert (settings.prefetch, settings.prefetch_limit) == (6, 6)
    auto = build_chronos(f"{name}:chronos", concurrency=4).worker.settings
    assert (auto.prefetch, auto.prefetch_limit) == (None, 32)


@pytest.mark.usefixtures("httpx_log_level")
def test_a_negative_prefetch_is_refused_with_a_clear_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = write_module(project, HANDLER_MODULE.format(args='api_key="chrns_k"'))
    assert run_cli(["--prefetch", "-1", f"{name}:chronos"]) == 2
    assert "prefetch must be an integer >= 0, got -1" in capsys.readouterr().err


@pytest.mark.usefixtures("httpx_log_level")
def test_the_prefetch_environment_variable_is_honoured(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = write_module(project, HANDLER_MODULE.format(args='api_key="chrns_k", concurrency=4'))
    monkeypatch.setenv("CHRONOS_WORKER_PREFETCH", "2")
    assert build_chronos(f"{name}:chronos").worker.settings.prefetch_limit == 2
    assert build_chronos(f"{name}:chronos", prefetch=0).worker.settings.prefetch_limit == 0
    monkeypatch.setenv("CHRONOS_WORKER_PREFETCH", "-3")
    fresh = write_module(project, HANDLER_MODULE.format(args='api_key="chrns_k"'))
    assert run_cli([f"{fresh}:chronos"]) == 2  # refused when the module builds its Chronos
    assert "CHRONOS_WORKER_PREFETCH must be an integer >= 0 or auto, got '-3'" in (
        capsys.readouterr().err
    )
