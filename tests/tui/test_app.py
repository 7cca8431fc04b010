"""The dashboard under Pilot against the in-memory fake: keys in, rows and API calls out."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
from rich.text import Text
from textual import events
from textual.pilot import Pilot

from chronos_tui import overview
from chronos_tui.api import ChronosAPI, RequestFailed
from chronos_tui.app import ChronosApp
from chronos_tui.base import LiveScreen
from chronos_tui.details import ExecutionDetail, JobDetail, ScheduleDetail
from chronos_tui.lists import ExecutionsScreen, JobsScreen, SchedulesScreen
from chronos_tui.overview import OverviewScreen
from chronos_tui.rows import TOTAL_KEY
from chronos_tui.widgets import ConfirmScreen, FilterBar, HelpScreen, LiveTable
from chronos_worker.models import (
    Account,
    HandlerLimits,
    HandlerStats,
    Job,
    JobStatus,
    Page,
    SigningSecretState,
)
from tests.tui import fakes
from tests.tui.fakes import FakeAPI, demo_api, make_job
from tests.tui.helpers import (
    cell,
    column,
    drive,
    fields_text,
    press,
    settle,
    status_line,
    table,
)


def reload(app: ChronosApp) -> None:
    screen = app.screen
    assert isinstance(screen, LiveScreen)
    screen.reload()


def test_overview_shows_queues_per_handler_and_flags_unclaimed_ready_jobs() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, OverviewScreen)
        # busiest first: send-report has 6 jobs ready or retrying, demo.tick 1 running and 3
        # failed; send-mail has no job, only a worker channel
        assert table(app, "#queues").keys == ["send-report", "demo.tick", "send-mail", TOTAL_KEY]
        assert cell(app, "#queues", "send-report", "ready") == "4"
        assert cell(app, "#queues", "send-report", "retrying") == "2"
        assert cell(app, "#queues", "demo.tick", "completed") == "1700"
        assert cell(app, "#queues", TOTAL_KEY, "ready") == "4"
        assert cell(app, "#queues", "send-report", "oldest") == "⚠ 1m 35s"
        assert cell(app, "#queues", "demo.tick", "oldest") == "—"
        feed = table(app, "#feed")
        assert feed.row_count == len(api.executions)
        assert feed.keys[0] == api.executions[0].id  # newest first
        assert "live" in status_line(app)

    api = demo_api()
    drive(api, scenario)


def test_overview_updates_rows_in_place_as_new_executions_arrive() -> None:
    async def arrive(app: ChronosApp, pilot: Pilot[None], execution_id: str) -> None:
        api.executions.insert(0, api.executions[0].model_copy(update={"id": execution_id}))
        api.executions.pop()  # the oldest falls off the first page
        reload(app)
        await settle(pilot)

    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        feed = table(app, "#feed")
        oldest_row = feed.get_row(feed.keys[1])
        await arrive(app, pilot, "new-1")
        assert feed.keys == [e.id for e in api.executions]
        assert feed.selected_key == "new-1"  # a cursor on the newest row stays there (tail -f)
        assert feed.get_row(feed.keys[2]) == oldest_row  # untouched rows keep their cells
        feed.move_cursor(row=2)
        watched = feed.selected_key
        await arrive(app, pilot, "new-2")
        assert feed.keys[:2] == ["new-2", "new-1"]
        assert feed.selected_key == watched  # elsewhere, the cursor stays on its execution

    api = demo_api()
    drive(api, scenario)


def test_number_and_letter_keys_switch_screens_and_question_mark_opens_help() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2")
        assert isinstance(app.screen, SchedulesScreen)
        assert column(app, "#list", "cadence") == ["every 2 s", "0 9 * * 1-5"]
        await press(pilot, "j")
        assert isinstance(app.screen, JobsScreen)
        assert table(app, "#list").row_count == len(api.jobs)
        await press(pilot, "e")
        assert isinstance(app.screen, ExecutionsScreen)
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        await press(pilot, "o")
        assert isinstance(app.screen, OverviewScreen)

    api = demo_api()
    drive(api, scenario)


def test_jobs_filter_by_status_and_handler_from_the_slash_prompt() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3", "slash")
        await pilot.press(*"ready send-report")
        await press(pilot, "enter")
        assert set(column(app, "#list", "status")) == {"ready"}
        assert table(app, "#list").row_count == 4
        assert "status ready, handler send-report" in str(table(app, "#list").border_title)
        await press(pilot, "slash", "ctrl+u", "enter")  # an empty filter clears it
        assert table(app, "#list").row_count == len(api.jobs)

    api = demo_api()
    drive(api, scenario)


def test_executions_filter_by_two_statuses() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "4", "slash")
        await pilot.press(*"failed timeout")
        await press(pilot, "enter")
        assert column(app, "#list", "status") == ["failed", "timeout"]

    drive(demo_api(), scenario)


def test_cancel_asks_first_and_only_yes_cancels() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        ready = next(j for j in api.jobs if j.status is JobStatus.READY)
        jobs = table(app, "#list")
        jobs.move_cursor(row=jobs.keys.index(ready.id))
        await press(pilot, "c")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "n")
        assert api.calls == []
        await press(pilot, "c")
        await press(pilot, "y")
        assert api.calls == [("cancel", ready.id)]
        assert cell(app, "#list", ready.id, "status") == "cancelled"

    api = demo_api()
    drive(api, scenario)


def test_cancel_of_a_running_job_is_refused_without_a_request() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        assert cell(app, "#list", table(app, "#list").keys[0], "status") == "running"
        await press(pilot, "c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert api.calls == []
        assert any("cannot be cancelled" in n.message for n in app._notifications)

    api = demo_api()
    drive(api, scenario)


def test_rerun_creates_a_one_off_job_from_a_finished_job_in_its_detail() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        failed = next(j for j in api.jobs if j.status is JobStatus.FAILED)
        jobs = table(app, "#list")
        jobs.move_cursor(row=jobs.keys.index(failed.id))
        await press(pilot, "enter")
        assert isinstance(app.screen, JobDetail)
        assert column(app, "#related", "status") == ["failed", "timeout"]
        await press(pilot, "r")
        assert api.calls == [("create", "welcome mail")]
        assert api.created == {
            "name": "welcome mail",
            "handler": "send-mail",
            "delivery": {"type": "pull"},
            "payload": failed.payload,
            "timeout": 30,
            "max_retries": 3,
        }
        await press(pilot, "escape")
        assert isinstance(app.screen, JobsScreen)
        assert table(app, "#list").row_count == len(api.jobs)  # the new job is listed

    api = demo_api()
    drive(api, scenario)


def test_rerun_of_an_unfinished_job_does_nothing() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3", "r")
        assert api.calls == []

    api = demo_api()
    drive(api, scenario)


def test_schedule_archive_with_confirmation_and_run_now() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2")
        report = api.schedules[1]
        table(app, "#list").move_cursor(row=1)
        await press(pilot, "r")
        assert api.calls == [("run", report.id)]
        await press(pilot, "enter")
        assert isinstance(app.screen, ScheduleDetail)
        await press(pilot, "a")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        assert api.calls[-1] == ("archive", report.id)
        await press(pilot, "escape")
        assert cell(app, "#list", report.id, "status") == "archived"
        await press(pilot, "a", "y")  # archiving twice: the server's 409 becomes a notification
        assert any(n.severity == "error" for n in app._notifications)

    api = demo_api()
    drive(api, scenario)


def test_schedule_pause_and_resume_from_the_list_and_the_detail() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2")
        report = api.schedules[1]
        table(app, "#list").move_cursor(row=1)
        await press(pilot, "p")
        assert api.calls == [("pause", report.id)]
        assert cell(app, "#list", report.id, "status") == "paused"
        await press(pilot, "enter")
        assert isinstance(app.screen, ScheduleDetail)
        await press(pilot, "p")  # paused: the same key resumes
        assert api.calls[-1] == ("resume", report.id)
        await press(pilot, "escape")
        assert cell(app, "#list", report.id, "status") == "active"

    api = demo_api()
    drive(api, scenario)


def test_feed_enter_opens_execution_detail_and_j_its_job() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "tab")  # from the queues to the feed
        failed = next(e for e in api.executions if e.status == "failed")
        feed = table(app, "#feed")
        feed.move_cursor(row=feed.keys.index(failed.id))
        await press(pilot, "enter")
        assert isinstance(app.screen, ExecutionDetail)
        assert "RuntimeError: boom" in fields_text(app)
        await press(pilot, "j")
        assert isinstance(app.screen, JobDetail) and app.screen.item_id == failed.job_id

    api = demo_api()
    drive(api, scenario)


def test_handler_row_opens_its_jobs() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        queues = table(app, "#queues")
        queues.move_cursor(row=queues.keys.index("send-report"))
        await press(pilot, "enter")
        assert isinstance(app.screen, JobsScreen)
        assert set(column(app, "#list", "handler")) == {"send-report"}
        await press(pilot, "escape")
        assert isinstance(app.screen, OverviewScreen)

    drive(demo_api(), scenario)


def test_unreachable_server_keeps_the_rows_and_says_so() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        rows = table(app, "#feed").row_count
        api.down = True
        reload(app)
        await settle(pilot)
        assert "connection refused" in status_line(app)
        assert app.screen.query_one("#status").has_class("error")
        assert table(app, "#feed").row_count == rows
        api.down = False
        reload(app)
        await settle(pilot)
        assert "live" in status_line(app)

    api = demo_api()
    drive(api, scenario)


def test_timer_refreshes_the_visible_screen_and_quit_closes_the_client() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        before = screen.loads
        await pilot.pause(0.5)
        assert screen.loads >= before + 2
        await pilot.press("q")

    api = FakeAPI()
    drive(api, scenario, refresh_seconds=0.1)
    assert api.closed


def test_keys_typed_right_after_slash_reach_the_filter() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        for key, char in [("slash", "/"), ("f", "f"), ("a", "a"), ("slash", "/"), ("b", "b")]:
            app.post_message(events.Key(key, char))  # one burst, as from a paste or tmux
        await settle(pilot)
        bar = app.screen.query_one(FilterBar)
        assert (bar.has_focus, bar.value) == (True, "fa/b")
        assert api.calls == []  # neither `f` nor `a` ran a table action

    api = demo_api()
    drive(api, scenario)


def test_rate_limit_pauses_refreshes_for_retry_after() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        api.limited = True
        screen.reload()
        await settle(pilot)
        assert "rate limited by the server: next refresh in 30 s" in status_line(app)
        asked = api.stats_calls
        screen.tick()
        await settle(pilot)
        assert api.stats_calls == asked  # quiet until Retry-After has passed

    api = demo_api()
    drive(api, scenario)


def test_clicking_the_highlighted_row_opens_it() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        await pilot.click(LiveTable, offset=(4, 3))  # the second job row: highlight it…
        await pilot.click(LiveTable, offset=(4, 3))  # …and a click on the highlighted row opens it
        await settle(pilot)
        assert isinstance(app.screen, JobDetail) and app.screen.item_id == api.jobs[1].id

    api = demo_api()
    drive(api, scenario)


def test_overview_status_line_shows_a_signing_secret_rotation_until_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`GET /v1/account` says a rotation runs until 11:00 (NOW is 09:00): the status line says
    so; the account is read again only every 30 s (monotonic), not on every tick, and the note
    goes at 11:00 by the dashboard's clock even without a new read."""
    now = [fakes.NOW]
    seconds = [1000.0]
    monkeypatch.setattr(overview, "monotonic", lambda: seconds[0])

    async def tick(app: ChronosApp, pilot: Pilot[None], at: float) -> None:
        seconds[0] = at
        reload(app)
        await settle(pilot)

    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        assert status_line(app) == (
            "● 09:00:00  live · secret rotation: previous one sent until 11:00:00 (in 2h 00m) · "
            "http://chronos.test · 3 handler(s) · every 60 s"
        )
        await tick(app, pilot, 1029.9)
        assert (api.account_calls, api.stats_calls) == (1, 2)
        await tick(app, pilot, 1030.0)
        assert (api.account_calls, api.stats_calls) == (2, 3)
        now[0] = fakes.NOW + timedelta(hours=2)
        await tick(app, pilot, 1031.0)
        assert api.account_calls == 2
        assert status_line(app) == (
            "● 11:00:00  live · http://chronos.test · 3 handler(s) · every 60 s"
        )

    api = demo_api()
    until = fakes.NOW + timedelta(hours=2)
    state = SigningSecretState(rotating=True, previous_sent_until=until)
    api.account_doc = api.account_doc.model_copy(update={"signing_secret": state})
    drive(api, scenario, clock=lambda: now[0])


def test_overview_without_the_account_endpoint_shows_no_rotation() -> None:
    """A server without `GET /v1/account` (404): the overview works as before."""

    async def missing() -> Account:
        raise RequestFailed("Route not found (HTTP 404)", 404, "not_found")

    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        assert status_line(app).endswith("live · http://chronos.test · 3 handler(s) · every 60 s")
        assert table(app, "#queues").row_count == 3

    api = demo_api()
    api.account = missing  # type: ignore[method-assign]


def many_handlers() -> FakeAPI:
    """15 handlers, the alphabetically last one by far the busiest."""
    api = demo_api()
    quiet = [HandlerStats(handler=f"h{i:02d}", counts={JobStatus.COMPLETED: i}) for i in range(14)]
    busy = HandlerStats(handler="zz-busy", counts={JobStatus.RUNNING: 50, JobStatus.READY: 900})
    api.stats_doc = api.stats_doc.model_copy(update={"handlers": [*quiet, busy]})
    api.workers_doc = None
    return api


def test_queue_panel_ranks_the_busiest_first_and_scrolls() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        queues = table(app, "#queues")
        assert queues.keys[0] == "zz-busy"  # on top, not below the fold
        assert queues.keys[1:4] == ["h13", "h12", "h11"]  # then by jobs done in the window
        assert queues.keys[-1] == TOTAL_KEY
        assert queues.scroll_y == 0 and queues.max_scroll_y > 0  # more rows than room
        await press(pilot, "end")
        assert queues.selected_key == TOTAL_KEY
        assert queues.scroll_y == queues.max_scroll_y  # scrolled to show the last row

    drive(many_handlers(), scenario, size=(80, 24))


def test_a_handler_with_limits_shows_them_after_its_name_loud_while_they_hold_jobs() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        assert cell(app, "#queues", "send-report", "handler") == "send-report ≤2 0.5/s"
        assert cell(app, "#queues", "demo.tick", "handler") == "demo.tick 10/s"
        assert cell(app, "#queues", "send-mail", "handler") == "send-mail"
        held = table(app, "#queues").get_cell("send-report", "handler")
        idle = table(app, "#queues").get_cell("demo.tick", "handler")
        assert isinstance(held, Text) and isinstance(idle, Text)
        assert "yellow" in str(held.spans[-1].style) and "yellow" not in str(idle.spans[-1].style)
        await press(pilot, "enter")  # the row still opens the handler's jobs
        assert isinstance(app.screen, JobsScreen)

    api = demo_api()
    rows = []
    for h in api.stats_doc.handlers:
        if h.handler == "send-report":
            h = h.model_copy(
                update={
                    "limits": HandlerLimits(max_running=2, max_per_second=0.5),
                    "limited": 3,
                    "queued_reason": "max_running",
                }
            )
        elif h.handler == "demo.tick":
            h = h.model_copy(update={"limits": HandlerLimits(max_per_second=10.0)})
        rows.append(h)
    api.stats_doc = api.stats_doc.model_copy(update={"handlers": rows})
    drive(api, scenario)


def test_worker_columns_show_channels_and_free_credits_per_handler() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        assert cell(app, "#queues", "demo.tick", "workers") == "2"
        assert cell(app, "#queues", "demo.tick", "credits") == "5"
        assert cell(app, "#queues", "send-mail", "credits") == "0"  # saturated
        assert cell(app, "#queues", "send-report", "workers") == "·"  # no channel
        assert cell(app, "#queues", "send-report", "credits") == "—"
        assert cell(app, "#queues", TOTAL_KEY, "workers") == "3"
        labels = [str(c.label) for c in table(app, "#queues").columns.values()]
        assert labels[-2:] == ["wkrs", "free"]

    drive(demo_api(), scenario)


def test_end_and_home_move_the_highlight_and_the_next_action_hits_that_row() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        jobs = table(app, "#list")
        await press(pilot, "end")
        assert jobs.selected_key == api.jobs[-1].id
        await press(pilot, "c", "y")  # the last job is a ready one
        assert api.calls == [("cancel", api.jobs[-1].id)]
        await press(pilot, "home")
        assert jobs.cursor_row == 0
        await press(pilot, "c")  # the first job is running: refused without a question
        assert api.calls == [("cancel", api.jobs[-1].id)]

    api = demo_api()
    api.jobs.append(make_job("oldest", "send-report", JobStatus.READY, 5000))
    drive(api, scenario)


def paged_api(n: int = 250) -> FakeAPI:
    api = demo_api()
    api.jobs = [make_job(f"job {i}", "bulk", JobStatus.READY, 10 + i) for i in range(n)]
    return api


def test_lists_load_the_next_page_when_the_highlight_reaches_the_last_row() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        jobs = table(app, "#list")
        assert jobs.row_count == 100 and jobs.border_subtitle == "100 of 250"
        jobs.move_cursor(row=98)
        await press(pilot, "down")  # onto the last loaded row
        assert jobs.row_count == 200
        assert jobs.selected_key == api.jobs[99].id  # the highlight stays on its row
        await press(pilot, "end")  # the last loaded row again: one more page
        assert jobs.keys == [j.id for j in api.jobs]
        assert jobs.selected_key == api.jobs[199].id
        await press(pilot, "end")
        assert jobs.selected_key == api.jobs[-1].id and jobs.border_subtitle == "250 of 250"
        await press(pilot, "home")  # back to the top: back to one page
        assert jobs.row_count == 100 and jobs.cursor_row == 0

    api = paged_api()
    drive(api, scenario)
    # Past the first page, by the cursor of the page before it (the last row's id here).
    assert (3, api.jobs[199].id) in api.pages_asked
    assert all(page == 1 or cursor is not None for page, cursor in api.pages_asked)


def test_lists_page_by_number_against_a_server_without_cursors() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        jobs = table(app, "#list")
        jobs.move_cursor(row=98)
        await press(pilot, "down")
        await press(pilot, "end")
        assert jobs.keys == [j.id for j in api.jobs]

    api = paged_api()
    api.cursors = False
    drive(api, scenario)
    assert (3, None) in api.pages_asked
    assert all(cursor is None for _, cursor in api.pages_asked)


def test_a_refresh_chains_the_cursors_so_rows_pushed_down_are_not_lost() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        jobs = table(app, "#list")
        jobs.move_cursor(row=98)
        await press(pilot, "down")  # two pages loaded
        assert jobs.row_count == 200
        for i in range(5):  # five new jobs on top push five rows from page 1 to page 2
            api.jobs.insert(0, make_job(f"new {i}", "bulk", JobStatus.READY, 1))
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await screen.load()
        await pilot.pause()
        assert jobs.keys == [j.id for j in api.jobs[:200]]

    api = paged_api()
    drive(api, scenario)


def test_an_estimated_total_shows_as_approximate() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        assert table(app, "#list").border_subtitle == "100 of ~250"

    api = paged_api()
    exact = api.list_jobs

    async def estimated(**kwargs: Any) -> Page[Job]:
        return dataclasses.replace(await exact(**kwargs), total_estimated=True)

    api.list_jobs = estimated  # type: ignore[method-assign]
    drive(api, scenario)


def test_a_job_shows_its_schedule_by_name_fetched_once() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3")
        scheduled = next(j for j in api.jobs if j.schedule_id is not None)
        assert scheduled.schedule_id is not None
        jobs = table(app, "#list")
        jobs.move_cursor(row=jobs.keys.index(scheduled.id))
        await press(pilot, "enter")
        assert isinstance(app.screen, JobDetail)
        line = next(ln for ln in fields_text(app).splitlines() if ln.startswith("schedule"))
        assert line.split(None, 1)[1].strip() == f"demo tick ({scheduled.schedule_id[:8]})"
        reload(app)
        await settle(pilot)
        assert api.schedule_gets == 1  # cached

    api = demo_api()
    drive(api, scenario)


def test_screen_keys_show_the_list_not_an_old_detail() -> None:
    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        await press(pilot, "3", "enter")
        assert isinstance(app.screen, JobDetail)
        await press(pilot, "1")
        assert isinstance(app.screen, OverviewScreen)
        await press(pilot, "3")
        assert isinstance(app.screen, JobsScreen)  # was: the old JobDetail
        await press(pilot, "enter", "3")  # the key of the screen on view: back to its list
        assert isinstance(app.screen, JobsScreen)
        await press(pilot, "1", "enter")  # a handler's jobs, opened from the overview
        assert isinstance(app.screen, JobsScreen)
        await press(pilot, "o")
        assert isinstance(app.screen, OverviewScreen)

    drive(demo_api(), scenario)


def test_a_server_without_the_workers_endpoint_shows_no_worker_columns_and_is_asked_once() -> None:
    demo = demo_api()
    asked: list[str] = []

    def old_server(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/v1/stats":
            data: Any = demo.stats_doc.model_dump(mode="json")
            return httpx.Response(200, json={"success": True, "data": data})
        if request.url.path == "/v1/executions":
            data = [e.model_dump(mode="json") for e in demo.executions]
            paging = {"page": 1, "pages": 1, "size": 30, "total": len(data)}
            body = {"success": True, "data": data, "meta": {"paging": paging}}
            return httpx.Response(200, json=body)
        missing = {"success": False, "message": "Not found", "code": "not_found", "errors": []}
        return httpx.Response(404, json=missing)

    async def scenario(app: ChronosApp, pilot: Pilot[None]) -> None:
        for _ in range(3):
            reload(app)
            await settle(pilot)
        labels = [str(c.label) for c in table(app, "#queues").columns.values()]
        assert "wkrs" not in labels and "free" not in labels
        assert table(app, "#queues").keys == ["send-report", "demo.tick", TOTAL_KEY]
        assert "live" in status_line(app)  # no error
        assert asked.count("/v1/stats") >= 4
        assert asked.count("/v1/workers") == 1

    api = ChronosAPI("http://chronos.test", "chrns_k", transport=httpx.MockTransport(old_server))
    drive(api, scenario)
