"""Schedule names by id, for showing a job's schedule by name instead of its UUID.

One cache per app (held by `Env`): a name is fetched with `GET /v1/schedules/:id` the first time
it is needed, and kept; screens that list or show schedules feed it for free with `remember`, so a
renamed schedule is picked up as soon as one of them is on view. A 404 is remembered as "no
name"; any other failure propagates like every fetch (and is tried again on the next refresh).
"""

from __future__ import annotations

from collections.abc import Iterable

from chronos_tui.api import DashboardAPI, RequestFailed
from chronos_worker.models import Schedule


class ScheduleNames:
    def __init__(self) -> None:
        self._names: dict[str, str | None] = {}

    def remember(self, schedules: Iterable[Schedule]) -> None:
        for s in schedules:
            self._names[s.id] = s.name

    async def name(self, api: DashboardAPI, schedule_id: str) -> str | None:
        """The schedule's name, None if the server does not know it."""
        if schedule_id not in self._names:
            try:
                found = await api.get_schedule(schedule_id)
            except RequestFailed as exc:
                if exc.status != 404:
                    raise
                self._names[schedule_id] = None
            else:
                self._names[schedule_id] = found.name
        return self._names[schedule_id]
