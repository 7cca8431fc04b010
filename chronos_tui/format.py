"""Pure formatting for the dashboard: ages, durations, times, cadences, statuses, outcomes.

No I/O and no clock: callers pass `now` and the display timezone, so the same data always renders
the same way (the snapshot test depends on it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text

from chronos_worker.models import Execution, Schedule

STATUS_STYLES = {
    "pending": "grey62",
    "admitting": "cyan",
    "queued": "cyan",
    "ready": "bold dodger_blue1",
    "running": "bold yellow",
    "retrying": "magenta",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "grey50",
    "timeout": "bold red",
    "active": "green",
    "paused": "yellow",
    "archived": "grey50",
}
# A `ready` job older than this is not being claimed: most likely no worker serves its handler.
STALE_READY_MS = 10_000
VERY_STALE_READY_MS = 60_000


def span(ms: int) -> str:
    """A compact age: `850ms`, `42s`, `3m 05s`, `2h 10m`, `3d 4h`."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def duration(ms: int | None) -> str:
    """An execution's duration: `12 ms`, `1.25 s`, `3m 05s`; `—` while unknown."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return span(ms)


def relative(when: datetime | None, now: datetime) -> str:
    """`in 3s` / `5s ago` / `now`; `—` for no time."""
    if when is None:
        return "—"
    delta_ms = int((when - now).total_seconds() * 1000)
    if abs(delta_ms) < 1000:
        return "now"
    return f"in {span(delta_ms)}" if delta_ms > 0 else f"{span(-delta_ms)} ago"


def clock(when: datetime | None, tz: tzinfo | None, now: datetime | None = None) -> str:
    """`14:03:07` for today (in `tz`), `03-14 14:03` otherwise; `—` for no time."""
    if when is None:
        return "—"
    local = when.astimezone(tz)
    if now is not None and local.date() == now.astimezone(tz).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%m-%d %H:%M") if now is not None else local.strftime("%Y-%m-%d %H:%M:%S")


def cadence(schedule: Schedule) -> str:
    """`every 2 s` for intervals, the cron expression otherwise."""
    if schedule.interval is not None:
        unit = {"second": "s", "minute": "min", "hour": "h", "day": "d", "week": "w"}.get(
            schedule.interval.unit, schedule.interval.unit
        )
        return f"every {schedule.interval.value} {unit}"
    return schedule.cron or "—"


def schedule_state(schedule: Schedule) -> str:
    """A schedule's status, `paused` for an active one that is paused (the API keeps it
    `active` with `paused_at` set)."""
    if schedule.status.value == "active" and schedule.paused_at is not None:
        return "paused"
    return schedule.status.value


def policies(schedule: Schedule) -> str:
    """`latest / allow`: the catch-up policy (`all` with its limit) and the overlap policy; the
    hosted API's behaviour when the server does not say."""
    catch_up = schedule.catch_up or "latest"
    if catch_up == "all" and schedule.catch_up_limit is not None:
        catch_up += f" (at most {schedule.catch_up_limit})"
    return f"{catch_up} / {schedule.overlap or 'allow'}"


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLES.get(value, ""))


def count(n: int, status_name: str) -> Text:
    """A queue cell: blank-ish for zero so the non-zero counts stand out."""
    if n == 0:
        return Text("·", style="grey35", justify="right")
    return Text(str(n), style=STATUS_STYLES.get(status_name, ""), justify="right")


def limits(max_running: int | None, max_per_second: float | None, held: int) -> Text:
    """A handler's limits after its name, `≤2 5/s`; yellow while they hold jobs back."""
    parts = []
    if max_running is not None:
        parts.append(f"≤{max_running}")
    if max_per_second is not None:
        parts.append(f"{max_per_second:g}/s")
    return Text(" ".join(parts), style="bold yellow" if held else "grey62")


def oldest_ready(age_ms: int | None) -> Text:
    """The oldest `ready` job's age; loud when nothing seems to claim it."""
    if age_ms is None:
        return Text("—", style="grey35", justify="right")
    if age_ms >= VERY_STALE_READY_MS:
        return Text(f"⚠ {span(age_ms)}", style="bold white on red", justify="right")
    if age_ms >= STALE_READY_MS:
        return Text(f"⚠ {span(age_ms)}", style="bold yellow", justify="right")
    return Text(span(age_ms), justify="right")


def workers(n: int) -> Text:
    """Open worker channels serving a handler."""
    return Text(str(n), style="green", justify="right")


def credits(n: int) -> Text:
    """The free credits of a handler's channels: `0` means every one of them is busy."""
    if n == 0:
        return Text("0", style="bold yellow", justify="right")
    return Text(str(n), justify="right")


def short_id(value: str | None) -> str:
    return value[:8] if value else "—"


def compact_json(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def outcome(execution: Execution, limit: int = 60) -> str:
    """One line about how an attempt ended: the error, the HTTP status, or the result."""
    parts: list[str] = []
    if execution.http_status is not None:
        parts.append(f"HTTP {execution.http_status}")
    if execution.error is not None:
        name = f"{execution.error.name}: " if execution.error.name else ""
        parts.append(f"{name}{execution.error.message}")
    elif execution.result is not None:
        parts.append(compact_json(execution.result, limit))
    text = " ".join(parts).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Filter:
    """What `/` typed: the status words it recognised and the rest (a handler name)."""

    statuses: tuple[str, ...] = ()
    handler: str | None = None

    def describe(self, rest_label: str = "handler") -> str:
        parts = []
        if self.statuses:
            parts.append("status " + " | ".join(self.statuses))
        if self.handler:
            parts.append(f"{rest_label} {self.handler}")
        return ", ".join(parts) or "no filter"


def parse_filter(text: str, known_statuses: Iterable[str]) -> Filter:
    """`failed timeout demo.tick` -> statuses (failed, timeout), handler demo.tick.

    Words may be separated by spaces or commas; `status=` / `handler=` prefixes are accepted.
    """
    known = set(known_statuses)
    statuses: list[str] = []
    rest: list[str] = []
    for word in text.replace(",", " ").split():
        key, _, value = word.partition("=")
        token = value if value and key in ("status", "handler") else word
        if token in known and key != "handler":
            if token not in statuses:
                statuses.append(token)
        else:
            rest.append(token)
    return Filter(tuple(statuses), " ".join(rest) or None)
