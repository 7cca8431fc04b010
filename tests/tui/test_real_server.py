"""The dashboard and `chronos-tui` against a real server (port 0, SQLite, real clock).

Real jobs in several states (ready, completed, failed, pending) are made over HTTP; the dashboard
must show them, and its keys must cancel, re-run, run now and archive on the server.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from chronos_tui.api import ChronosAPI
from chronos_tui.app import ChronosApp
from chronos_tui.cli import EXIT_AUTH, EXIT_USAGE, check_server, run_cli
from chronos_tui.lists import JobsScreen, SchedulesScreen
from chronos_tui.names import ScheduleNames
from tests.tui.helpers import cell, drive, press, table
from tests.tui.server import ThreadServer, thread_server, worker_channel

WAIT_SECONDS = 15.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with thread_server(tmp_path_factory.mktemp("tui-server")) as running:
        yield running


def make_jobs(client: httpx.Client) -> dict[str, Any]:
    """alpha: 1 completed + 2 ready; gamma: 1 failed; beta: 1 pending; one active schedule."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def claim(handler: str) -> dict[str, Any]:
        return post("/v1/worker/jobs/claim", {"handlers": [handler], "wait_time_seconds": 10})

    post("/v1/jobs", {"name": "first", "handler": "alpha", "payload": {"n": 1}})
    done = claim("alpha")
    post(f"/v1/worker/executions/{done['execution_id']}/result", {"status": "completed"})
    for i in range(2):
        post("/v1/jobs", {"name": f"waiting {i}", "handler": "alpha"})
    failing = post(
        "/v1/jobs",
        {"name": "boom", "handler": "gamma", "payload": {"to": "x"}, "max_retries": 0},
    )
    lost = claim("gamma")
    failure = {"status": "failed", "error": {"message": "exploded", "name": "RuntimeError"}}
    post(f"/v1/worker/executions/{lost['execution_id']}/result", failure)
    later = post(
        "/v1/jobs", {"name": "later", "handler": "beta", "delay": {"value": 1, "unit": "hour"}}
    )
    schedule = post(
        "/v1/schedules",
        {"name": "hourly", "handler": "beta", "interval": {"value": 1, "unit": "hour"}},
    )
    return {"failed": failing, "pending": later, "schedule": schedule}


async def until(pilot: Pilot[None], check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def queue_count(app: ChronosApp, handler: str, state: str) -> str | None:
    queues = table(app, "#queues")
    return cell(app, "#queues", handler, state) if handler in queues.keys else None


def test_dashboard_shows_and_steers_a_real_server(server: ThreadServer) -> None:
    with server.client() as client:
        made = make_jobs(client)

        async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
            await until(pilot, lambda: queue_count(app, "alpha", "ready") == "2", "alpha ready")
            assert queue_count(app, "alpha", "completed") == "1"
            assert queue_count(app, "gamma", "failed") == "1"
            assert queue_count(app, "beta", "pending") == "1"
            assert table(app, "#feed").row_count == 2  # one completed, one failed attempt

            await press(pilot, "3", "slash", *"pending beta", "enter")
            assert isinstance(app.screen, JobsScreen)
            await until(
                pilot, lambda: table(app, "#list").keys == [made["pending"]["id"]], "pending"
            )
            await press(pilot, "c", "y")
            job = client.get(f"/v1/jobs/{made['pending']['id']}").json()["data"]
            assert job["status"] == "cancelled"

            await press(pilot, "slash", "ctrl+u", *"failed", "enter")
            await until(pilot, lambda: table(app, "#list").keys == [made["failed"]["id"]], "failed")
            await press(pilot, "r")
            await until(pilot, lambda: _total(client, handler="gamma") == 2, "the re-run job")
            rerun = client.get("/v1/jobs", params={"handler": "gamma"}).json()["data"][0]
            assert (rerun["name"], rerun["payload"], rerun["max_retries"]) == (
                "boom",
                {"to": "x"},
                0,
            )

            schedule_id = made["schedule"]["id"]
            await press(pilot, "2")
            assert isinstance(app.screen, SchedulesScreen)
            await until(pilot, lambda: table(app, "#list").keys == [schedule_id], "schedules")
            await press(pilot, "r")
            await until(pilot, lambda: _total(client, schedule_id=schedule_id) >= 1, "run now")
            await press(pilot, "a", "y")
            schedule = client.get(f"/v1/schedules/{schedule_id}").json()["data"]
            assert schedule["status"] == "archived"

        api = ChronosAPI(server.url, server.api_key)
        drive(api, scenario, size=(110, 32), refresh_seconds=0.2, fixed_clock=False)


def _total(client: httpx.Client, **params: str) -> int:
    total: int = client.get("/v1/jobs", params=params).json()["meta"]["paging"]["total"]
    return total


def test_cli_checks_the_key_before_starting(
    server: ThreadServer, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(check_server(server.url, server.api_key))  # a good key passes the check
    code = run_cli(["--server", server.url, "--api-key", "chrns_" + "W" * 40])
    assert code == EXIT_AUTH
    err = capsys.readouterr().err
    assert "refused the API key" in err and "Traceback" not in err


def test_cli_unreachable_server_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the CLI connects: nothing listens
    code = run_cli(["--server", f"http://127.0.0.1:{port}", "--api-key", "chrns_x"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("chronos-tui: cannot reach") and err.count("\n") == 1


def test_cli_without_a_key_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHRONOS_API_KEY", raising=False)
    assert run_cli(["--server", "http://127.0.0.1:9"]) == EXIT_USAGE
    assert "no API key" in capsys.readouterr().err


def test_the_dashboard_imports_neither_trio_nor_the_server(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import sys, chronos_tui.cli, chronos_tui.app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'chronos_server'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_overview_shows_the_worker_channels_of_a_real_server(server: ThreadServer) -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        def workers(handler: str) -> tuple[str, ...] | None:
            if handler not in table(app, "#queues").keys:
                return None
            return tuple(cell(app, "#queues", handler, c) for c in ("workers", "credits"))

        # no job for these handlers yet: the rows come from the channels alone
        await until(pilot, lambda: workers("delta") == ("2", "3"), "delta's two channels")
        assert workers("epsilon") == ("1", "0")  # saturated

    with (
        worker_channel(server, ["delta"], credits=3, worker="box-1"),
        worker_channel(server, ["delta", "epsilon"], credits=0, worker="box-2"),
    ):
        api = ChronosAPI(server.url, server.api_key)
        drive(api, scenario, size=(110, 32), refresh_seconds=0.2, fixed_clock=False)


def test_pages_and_schedule_names_from_a_real_server(server: ThreadServer) -> None:
    with server.client() as client:
        for i in range(5):
            response = client.post("/v1/jobs", json={"name": f"paged {i}", "handler": "zeta"})
            assert response.status_code == 201, response.text
        schedule = client.post(
            "/v1/schedules",
            json={"name": "nightly", "handler": "eta", "interval": {"value": 1, "unit": "day"}},
        ).json()["data"]

    async def main() -> None:
        api = ChronosAPI(server.url, server.api_key)
        try:
            first = await api.list_jobs(handler="zeta", size=4)
            second = await api.list_jobs(handler="zeta", size=2, page=2)
            assert second.items == first.items[2:4] and second.total == first.total == 5
            top = await api.list_jobs(handler="zeta", size=2)
            assert top.next_cursor is not None
            after = await api.list_jobs(handler="zeta", size=2, cursor=top.next_cursor)
            assert after.items == first.items[2:4]
            both = await api.list_jobs(statuses=["ready", "pending"], handler="zeta", size=2)
            assert both.next_cursor is not None  # status lists page by cursor too
            rest = await api.list_jobs(
                statuses=["ready", "pending"], handler="zeta", size=4, cursor=both.next_cursor
            )
            assert len(rest.items) == 3 and rest.next_cursor is None
            names = ScheduleNames()
            assert await names.name(api, schedule["id"]) == "nightly"
            assert await names.name(api, "00000000-0000-4000-8000-000000000000") is None
        finally:
            await api.aclose()

    asyncio.run(main())
