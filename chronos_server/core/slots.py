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
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

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
