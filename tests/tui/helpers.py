"""Running the dashboard under Pilot from a plain sync test.

pytest runs `async def` tests under Trio (`trio_mode = true`), and Textual needs asyncio, so every
Textual test is a sync function that hands a scenario to `drive()`, which owns the asyncio loop.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from chronos_tui.api import DashboardAPI
from chronos_tui.app import ChronosApp, utc_now
from chronos_tui.base import LiveScreen
from chronos_tui.widgets import LiveTable
from tests.tui.fakes import fixed_now

Scenario = Callable[[ChronosApp, Pilot[None]], Awaitable[None]]


def drive(
    api: DashboardAPI,
    scenario: Scenario,
    *,
    size: tuple[int, int] = (100, 30),
    refresh_seconds: float = 60.0,
    fixed_clock: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Run `scenario` against a `ChronosApp` over `api`; a long refresh keeps the fake quiet.
    The app's clock is the fakes' fixed instant, the real one, or `clock` when given."""

    async def main() -> None:
        now = clock or (fixed_now if fixed_clock else utc_now)
        app = ChronosApp(api, refresh_seconds=refresh_seconds, now=now, tz=UTC)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(app, pilot)

    asyncio.run(main())


async def settle(pilot: Pilot[None]) -> None:
    """Let running fetches and actions finish and the screen catch up."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def press(pilot: Pilot[None], *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot)


async def wait_loads(pilot: Pilot[None], at_least: int, timeout: float = 10.0) -> LiveScreen:
    """Wait until the current screen has completed `at_least` fetches (real-server tests)."""
    screen = pilot.app.screen
    assert isinstance(screen, LiveScreen)
    deadline = asyncio.get_running_loop().time() + timeout
    while screen.loads < at_least:
        assert asyncio.get_running_loop().time() < deadline, f"{screen} did not refresh"
        await pilot.pause(0.05)
    return screen


def table(app: ChronosApp, selector: str) -> LiveTable:
    return app.screen.query_one(selector, LiveTable)


def cell(app: ChronosApp, selector: str, row_key: str, column: str) -> str:
    value = table(app, selector).get_cell(row_key, column)
    return value.plain if isinstance(value, Text) else str(value)


def column(app: ChronosApp, selector: str, name: str) -> list[str]:
    t = table(app, selector)
    return [cell(app, selector, key, name) for key in t.keys]


def status_line(app: ChronosApp) -> str:
    content = app.screen.query_one("#status", Static).content
    return content.plain if isinstance(content, Text) else str(content)


def fields_text(app: ChronosApp) -> str:
    """The detail screen's fields as plain text."""
    console = Console(width=120, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen.query_one("#fields", Static).content)
    return console.export_text()
