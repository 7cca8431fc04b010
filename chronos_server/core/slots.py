"""Schedule slots: the cron dialect, timezones, anchored interval grids and coalescing (spec §6).

Every instant here is an int of Unix milliseconds (UTC); nothing reads the clock, `now` is passed.

Why cronsim: it is small, typed, dependency-free and maintained by healthchecks.io, whose business
is predicting when cron jobs fire; it implements the classic Vixie/Debian cron matching rules
(including the DOM/DOW "either matches" rule) and handles DST the way Debian cron does. We use it
for parsing and field matching only, and we walk it over *naive local wall-clock time*; the mapping
from a wall-clock time to an instant is ours (`_wall_to_ms`), because G-24 asks for one rule for
every expression while cronsim's Debian emulation depends on the expression's shape:

* cronsim applies its DST fix-up only when both minute and hour are fixed (`30 2 * * *`); an
  expression with a wildcard minute or hour (`*/30 * * * *`, `30 * * * *`, `* 2 * * *`) is walked in
  absolute time, so it fires in *both* occurrences of a repeated hour and *never* for skipped local
  times (`* 2 * * *` does not fire at all on a spring-forward day).
* Our mapping: a matching local time that does not exist (spring-forward gap) fires at the first
  instant after the gap; one that exists twice (fall-back) fires at its first occurrence; several
  local times mapping to the same instant fire once. For fixed-time expressions this is exactly
  cronsim's own behaviour.

Dialect (G-23): 5 fields; `*`, lists, ranges, steps (`*/n`, `a-b/n`, `a/n`), three-letter month and
day names (any case), day-of-week 0-7. Rejected: seconds/year fields, `@` macros and cronsim's
extensions `L`, `W`, `#`, `?`. DOM/DOW: when both fields are restricted a day matches if either
does; as in Vixie cron (and cronsim), a field counts as unrestricted when it *starts with* `*`, so
`0 0 */2 * 1` means "odd days that are Mondays", not "odd days or Mondays".
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from chronos_server.core.models import CatchUp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
)
_VALUE = r"(?:\d+|[A-Za-z]{3})"
_TERM = re.compile(rf"(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/\d+)?")
_EXTENSIONS = ("L", "W", "#", "?")

# Wall-clock candidates that can map at or before `after` (inside a repeated hour) are skipped;
# a day-long overlap with a minutely expression is the worst case, so this bound is generous.
_MAX_SKIPPED_CANDIDATES = 10_000


class CronError(ValueError):
    """A cron expression outside the supported dialect; the message is meant for API users."""


def validate_cron(expr: str) -> str:
    """Return `expr` with whitespace collapsed, or raise CronError saying what is wrong."""
    return _validate_cron(" ".join(expr.split()))


@lru_cache(maxsize=1024)
def _validate_cron(expr: str) -> str:
    if expr.startswith("@"):
        raise CronError(f"cron macros such as {expr.split()[0]!r} are not supported; use 5 fields")
    fields = expr.split(" ") if expr else []
    if len(fields) != 5:
        raise CronError(
            "cron expression must have exactly 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for (name, allowed), text in zip(_FIELDS, fields, strict=True):
        _check_field_syntax(name, allowed, text)
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise CronError(_cronsim_message(str(exc), fields)) from exc
    return expr


def _check_field_syntax(name: str, allowed: str, text: str) -> None:
    for term in text.split(","):
        if _TERM.fullmatch(term):
            continue
        # Checked only after the grammar fails: names such as JUL and WED contain L and W.
        for ext in _EXTENSIONS:
            if ext in term.upper():
                raise CronError(f"{ext!r} in the {name} field is not supported")
        raise CronError(f"invalid {name} field {text!r} (allowed {allowed})")


def _cronsim_message(raw: str, fields: list[str]) -> str:
    for (name, allowed), text in zip(_FIELDS, fields, strict=True):
        if raw == f"Bad {name}":
            if name == "day-of-month":
                allowed += ", and the day must exist in one of the months"
            return f"{name} field {text!r} is out of range (allowed {allowed})"
    return f"invalid cron expression {' '.join(fields)!r}: {raw}"


def validate_timezone(name: str) -> str:
    """Return `name` if it is an IANA zone name, else raise ValueError."""
    # "localtime" is the host's /etc/localtime link, present in the tz directory on Debian.
    if name == "localtime" or name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def next_cron_slot(expr: str, tz: str, after_ms: int) -> int:
    """The first slot of `expr` in zone `tz` strictly after `after_ms` (DST per G-24)."""
    zone = ZoneInfo(tz)
    local = _to_utc(after_ms).astimezone(zone).replace(tzinfo=None)
    # Every wall time <= `local` maps to an instant <= after_ms, so the walk starts there; inside
    # the second pass of a repeated hour the first candidates map before after_ms and are skipped.
    walls = CronSim(validate_cron(expr), local)
    try:
        for _ in range(_MAX_SKIPPED_CANDIDATES):
            slot = _wall_to_ms(next(walls), zone)
            if slot > after_ms:
                return slot
    except StopIteration:
        pass
    raise CronError(f"cron expression {expr!r} has no upcoming slot")


def next_interval_slot(anchor_ms: int, interval_ms: int, after_ms: int) -> int:
    """The first grid point `anchor + k*interval` (k >= 1) strictly after `after_ms`."""
    _check_interval(interval_ms)
    k = max(1, (after_ms - anchor_ms) // interval_ms + 1)
    return anchor_ms + k * interval_ms


def first_slot(cron: str | None, interval_ms: int | None, tz: str, anchor_ms: int) -> int:
    """The first slot of a new schedule (G-25: an interval's is anchor + interval)."""
    interval = _check_cadence(cron, interval_ms)
    if cron is not None:
        return next_cron_slot(cron, tz, anchor_ms)
    return anchor_ms + interval


def latest_due_slot(
    cron: str | None,
    interval_ms: int | None,
    tz: str,
    anchor_ms: int,
    next_run_ms: int,
    now_ms: int,
) -> tuple[int, int]:
    """G-27 coalescing: `(slot_to_spawn, following_slot)` for a schedule due at `next_run_ms`.

    `slot_to_spawn` is the most recent slot in `[next_run_ms, now_ms]`; if none lies there (the
    stored `next_run_ms` is off the sequence) the stored value itself is spawned once.
    `following_slot` is the first slot strictly after `now_ms`.
    """
    if next_run_ms > now_ms:
        raise ValueError("schedule is not due: next_run_ms is after now_ms")
    if cron is not None:
        _check_cadence(cron, interval_ms)
        latest = _latest_cron_slot(cron, tz, next_run_ms, now_ms)
        following = next_cron_slot(cron, tz, now_ms)
    else:
        interval = _check_cadence(cron, interval_ms)
        k = (now_ms - anchor_ms) // interval
        latest = anchor_ms + k * interval if k >= 1 else None
        following = next_interval_slot(anchor_ms, interval, now_ms)
    if latest is None or latest < next_run_ms:
        return next_run_ms, following
    return latest, following


# `catch_up: none`: a slot spawned at most this late is on time, not missed — an admission pass
# under load or a quick restart (the spec's own example spawns 3 s late) must not drop it.
MISFIRE_GRACE_MS = 60_000


@dataclass(frozen=True)
class SpawnPlan:
    """What one look at a due schedule spawns: `slots`, ascending (possibly none), and the first
    slot strictly after now, where the schedule continues."""

    slots: tuple[int, ...]
    following: int


def plan_spawn(
    cron: str | None,
    interval_ms: int | None,
    tz: str,
    anchor_ms: int,
    next_run_ms: int,
    now_ms: int,
    *,
    stop_at_ms: int | None = None,
    catch_up: CatchUp = CatchUp.LATEST,
    limit: int = 1,
    grace_ms: int = MISFIRE_GRACE_MS,
) -> SpawnPlan:
    """The slots a schedule due at `next_run_ms` spawns at `now_ms` under its `catch_up` policy.

    The due slots are those in `[next_run_ms, min(now_ms, stop_at_ms)]` (the stored
    `next_run_ms` itself when none lies there, as in `latest_due_slot`). `latest` spawns the last
    of them (G-27); `all` the last `limit`, oldest first (so `latest` is `all` with limit 1);
    `none` the last one only if it is at most `grace_ms` old, else nothing: it was missed.
    """
    if next_run_ms > now_ms:
        raise ValueError("schedule is not due: next_run_ms is after now_ms")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    following = _first_after(cron, interval_ms, tz, anchor_ms, now_ms)
    until = now_ms if stop_at_ms is None else min(now_ms, stop_at_ms)
    if next_run_ms > until:  # only past stop_at: nothing is left to spawn
        return SpawnPlan((), following)
    count = limit if catch_up is CatchUp.ALL else 1
    due = _last_slots(cron, interval_ms, tz, anchor_ms, next_run_ms, until, count)
    if catch_up is CatchUp.NONE and now_ms - due[-1] > grace_ms:
        due = []
    return SpawnPlan(tuple(due), following)


def resume_next_run(
    catch_up: CatchUp,
    cron: str | None,
    interval_ms: int | None,
    tz: str,
    anchor_ms: int,
    pending_ms: int,
    now_ms: int,
) -> int:
    """`next_run_at` of a schedule resumed at `now_ms` whose first unspawned slot is `pending_ms`.

    `latest` and `all` keep `pending_ms`, so the slots missed while paused are caught up by the
    next admission pass exactly as after downtime; `none` skips every slot up to now (no grace:
    a pause is deliberate, not lateness) and continues at the first slot after it.
    """
    if catch_up is not CatchUp.NONE or pending_ms > now_ms:
        return pending_ms
    return _first_after(cron, interval_ms, tz, anchor_ms, now_ms)


def _first_after(
    cron: str | None, interval_ms: int | None, tz: str, anchor_ms: int, after_ms: int
) -> int:
    interval = _check_cadence(cron, interval_ms)
    if cron is not None:
        return next_cron_slot(cron, tz, after_ms)
    return next_interval_slot(anchor_ms, interval, after_ms)


def _last_slots(
    cron: str | None,
    interval_ms: int | None,
    tz: str,
    anchor_ms: int,
    since_ms: int,
    until_ms: int,
    count: int,
) -> list[int]:
    """The last `count` slots in `[since_ms, until_ms]`, ascending; `[since_ms]` if none."""
    interval = _check_cadence(cron, interval_ms)
    if cron is not None:
        found = _last_cron_slots(cron, tz, since_ms, until_ms, count)
    else:
        hi = (until_ms - anchor_ms) // interval
        lo = max(1, -((anchor_ms - since_ms) // interval), hi - count + 1)  # ceil division
        found = [anchor_ms + k * interval for k in range(lo, hi + 1)]
    return found or [since_ms]


def _last_cron_slots(cron: str, tz: str, since_ms: int, until_ms: int, count: int) -> list[int]:
    """The last `count` cron slots in `[since_ms, until_ms]`, ascending.

    Walking forward from `since_ms` could cost a month of minutely slots; instead the walk
    starts `count` periods (the gap after the latest slot) before the latest and, while that
    window holds too few, twice as far back, never before `since_ms`.
    """
    latest = _latest_cron_slot(cron, tz, since_ms, until_ms)
    if latest is None:
        return []
    if count == 1:
        return [latest]
    width = max(next_cron_slot(cron, tz, latest) - latest, 60_000) * count
    while True:
        start = max(latest - width, since_ms - 1)
        found = deque(cron_slots_between(cron, tz, start, until_ms), maxlen=count)
        if len(found) == count or start == since_ms - 1:
            return list(found)
        width *= 2


def cron_slots_between(expr: str, tz: str, after_ms: int, until_ms: int) -> Iterator[int]:
    """Every slot of `expr` in `(after_ms, until_ms]`, ascending: the sequence `next_cron_slot`
    gives step by step, from one cronsim walk (several wall times mapping to one instant, as
    in a spring-forward gap, fire once)."""
    zone = ZoneInfo(tz)
    local = _to_utc(after_ms).astimezone(zone).replace(tzinfo=None)
    last = after_ms
    for wall in CronSim(validate_cron(expr), local):
        slot = _wall_to_ms(wall, zone)
        if slot > until_ms:
            return
        if slot > last:
            yield slot
            last = slot


def _latest_cron_slot(cron: str, tz: str, since_ms: int, now_ms: int) -> int | None:
    """The last cron slot in `[since_ms, now_ms]`, or None.

    cronsim cannot walk backwards through our DST mapping, and a month of downtime is 43 200 slots
    of `* * * * *`, so this bisects on `after`: `next_cron_slot` is monotonic in it. Invariant:
    next(lo) <= now_ms < next(hi). The common case (one slot due) costs two cronsim walks.
    """
    first = next_cron_slot(cron, tz, since_ms - 1)
    if first > now_ms:
        return None
    second = next_cron_slot(cron, tz, first)
    if second > now_ms:
        return first
    lo, hi = second - 1, now_ms
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if next_cron_slot(cron, tz, mid) <= now_ms:
            lo = mid
        else:
            hi = mid
    return next_cron_slot(cron, tz, lo)


def recompute_next_run(
    cron: str | None,
    interval_ms: int | None,
    tz: str,
    anchor_ms: int,
    last_run_ms: int | None,
    now_ms: int,
) -> tuple[int, int]:
    """`(new_anchor_ms, next_run_ms)` after a PATCH changed the cadence or timezone (G-31).

    Cron keeps its anchor and takes the first match strictly after now. An interval keeps the grid
    of the last spawned slot (`last_run_ms` must be that slot's time) or, if nothing was spawned
    yet, re-anchors at now truncated to the whole second, as at creation (G-25).
    """
    if cron is not None:
        _check_cadence(cron, interval_ms)
        return anchor_ms, next_cron_slot(cron, tz, now_ms)
    interval = _check_cadence(cron, interval_ms)
    if last_run_ms is not None:
        return last_run_ms, next_interval_slot(last_run_ms, interval, now_ms)
    anchor = now_ms - now_ms % 1000
    return anchor, anchor + interval


def spawn_key(schedule_id: str, slot_ms: int) -> str:
    """The idempotency key a spawned job shows: `{schedule_id}.{slot_ms}` (spec §12.2).

    Shown only: the store keeps a spawned job's slot in a namespace of its own (one job per
    schedule and slot), apart from clients' keys, so a client key spelled like this blocks nothing.
    """
    return f"{schedule_id}.{slot_ms}"


def completes_before(
    next_run_ms: int | None, runs: int | None, run_count: int, stop_at_ms: int | None
) -> bool:
    """True when the schedule must complete instead of waiting for `next_run_ms` (G-29).

    `next_run_ms` None means the schedule has no further slot, which also completes it.
    """
    if runs is not None and run_count >= runs:
        return True
    if next_run_ms is None:
        return True
    return stop_at_ms is not None and next_run_ms > stop_at_ms


def _check_cadence(cron: str | None, interval_ms: int | None) -> int:
    """Enforce exactly one of cron/interval; return the interval (0 when cron is used)."""
    if (cron is None) == (interval_ms is None):
        raise ValueError("exactly one of cron and interval_ms must be given")
    if interval_ms is None:
        return 0
    _check_interval(interval_ms)
    return interval_ms


def _check_interval(interval_ms: int) -> None:
    if interval_ms <= 0:
        raise ValueError(f"interval must be positive, got {interval_ms} ms")


def _wall_to_ms(wall: datetime, zone: ZoneInfo) -> int:
    """Map a naive local wall time to its instant: first occurrence, or the end of a DST gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return _to_ms(first)
    return _gap_end_ms(wall, zone)


def _gap_end_ms(wall: datetime, zone: ZoneInfo) -> int:
    """The transition instant that skipped `wall`, i.e. the first instant after the gap.

    For a non-existent time, fold=1 applies the offset after the transition and gives an instant
    before it; fold=0 applies the offset before it and gives one after it (PEP 495). Bisect between.
    """
    lo = _to_ms(wall.replace(tzinfo=zone, fold=1))
    hi = _to_ms(wall.replace(tzinfo=zone, fold=0))
    after_offset = _offset_at(hi, zone)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(mid, zone) == after_offset:
            hi = mid
        else:
            lo = mid
    return hi


def _offset_at(ms: int, zone: ZoneInfo) -> timedelta | None:
    return _to_utc(ms).astimezone(zone).utcoffset()


def _to_utc(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _to_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _MS
