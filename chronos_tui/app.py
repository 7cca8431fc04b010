"""`ChronosApp`: the Textual application — four modes (Overview, Schedules, Jobs, Executions),
the global keys, and the API client's lifetime.

The app never creates its API client: `chronos_tui.cli` passes a `ChronosAPI`, tests a fake.
The clock and display timezone are injectable so a snapshot renders the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from chronos_tui.api import DashboardAPI
from chronos_tui.base import Env
from chronos_tui.lists import ExecutionsScreen, JobsScreen, SchedulesScreen
from chronos_tui.overview import OverviewScreen
from chronos_tui.widgets import HelpScreen

MODES = ("overview", "schedules", "jobs", "executions")


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChronosApp(App[None]):
    CSS_PATH = "chronos.tcss"
    TITLE = "Chronos"
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("1,o", "show('overview')", "Overview"),
        Binding("2,s", "show('schedules')", "Schedules"),
        Binding("3,j", "show('jobs')", "Jobs"),
        Binding("4,e", "show('executions')", "Executions"),
        Binding("S", "save_svg", "Screenshot", show=False),
    ]

    def __init__(
        self,
        api: DashboardAPI,
        *,
        refresh_seconds: float = 1.0,
        now: Callable[[], datetime] = utc_now,
        tz: tzinfo | None = None,
        screenshot_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.env = Env(api, now, tz, refresh_seconds)
        self.screenshot_dir = screenshot_dir or Path.cwd()
        env = self.env
        self.add_mode("overview", lambda: OverviewScreen(env))
        self.add_mode("schedules", lambda: SchedulesScreen(env))
        self.add_mode("jobs", lambda: JobsScreen(env))
        self.add_mode("executions", lambda: ExecutionsScreen(env))

    def on_mount(self) -> None:
        self.sub_title = self.env.api.base_url
        self.switch_mode("overview")

    async def on_unmount(self) -> None:
        await self.env.api.aclose()

    def action_show(self, mode: str) -> None:
        """A screen key always shows that screen's list (or the overview itself): the details
        opened from the screen being left are closed first, so coming back later does not land
        on an old detail, and the key of the mode on view goes back to its list."""
        if mode not in MODES:
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if mode != self.current_mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_save_svg(self) -> None:
        stamp = self.env.now().astimezone(self.env.tz).strftime("%Y%m%d-%H%M%S")
        path = self.save_screenshot(
            f"chronos-{self.current_mode}-{stamp}.svg", str(self.screenshot_dir)
        )
        self.notify(f"Screenshot saved to {path}")
