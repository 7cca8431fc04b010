"""Cron dialect, DST mapping, interval grids, coalescing and recomputation (spec §6, G-23..G-31)."""

from __future__ import annotations

from datetime import datetime

import pytest

from chronos_server.core.slots import (
    CronError,
    completes_before,
    first_slot,
    latest_due_slot,
    next_cron_slot,
    next_interval_slot,
    recompute_next_run,
    validate_cron,
    validate_timezone,
)

NY = "America/New_York"
BERLIN = "Europe/Berlin"
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def ms(iso: str) -> int:
    """An ISO 8601 instant with an explicit offset, as Unix milliseconds."""
    parsed = datetime.fromisoformat(iso)
    assert parsed.tzinfo is not None
    return int(parsed.timestamp() * 1000)


def cron_sequence(expr: str, tz: str, after: str, count: int) -> list[int]:
    out: list[int] = []
    cursor = ms(after)
    for _ in range(count):
        cursor = next_cron_slot(expr, tz, cursor)
        out.append(cursor)
    return out


# --- dialect -------------------------------------------------------------------------------------

DOCUMENTED_EXAMPLES = [
    "*/1 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "0 9 * * *",
    "0 9 * * 1-5",
    "0 0 * * 1",
    "0 0 1 * *",
    "0 */6 * * *",
]


@pytest.mark.parametrize("expr", DOCUMENTED_EXAMPLES)
def test_documented_examples_parse(expr: str) -> None:
    assert validate_cron(expr) == expr


@pytest.mark.parametrize(
    "expr",
    [
        "1,15 * * * *",
        "0-30/5 * * * *",
        "5/15 * * * *",
        "0 9 * jan-Mar Mon-fri",
        "0 0 1 DEC *",
        "0 0 * * sun",
        "0 0 * * 0",
        "0 0 * * 7",
        "0 0 * * 5-7",
        "0 0 29 2 *",
        "59 23 31 12 6",
    ],
)
def test_dialect_accepts(expr: str) -> None:
    assert validate_cron(expr) == expr


def test_whitespace_is_collapsed() -> None:
    assert validate_cron("  0\t9  * *   1-5 ") == "0 9 * * 1-5"


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0 0 0 * * *", "exactly 5 fields"),
        ("0 0 0 * * * 2026", "exactly 5 fields"),
        ("0 * * *", "exactly 5 fields"),
        ("", "exactly 5 fields"),
        ("@daily", "macros"),
        ("@reboot", "macros"),
        ("0 0 L * *", "'L'"),
        ("0 0 * * 5L", "'L'"),
        ("0 0 LW * *", "'L'"),
        ("0 0 15W * *", "'W'"),
        ("0 0 * * 1#2", "'#'"),
        ("0 0 ? * *", "'?'"),
        ("60 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day-of-month"),
        ("0 0 32 * *", "day-of-month"),
        ("0 0 30 2 *", "day-of-month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 * * JUL", "day-of-week"),
        ("0 0 * MON *", "month"),
        ("*/0 * * * *", "minute"),
        ("30-10 * * * *", "minute"),
        ("*-5 * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
        ("-1 * * * *", "minute"),
        ("a b c d e", "minute"),
        ("every minute please", "exactly 5 fields"),
    ],
)
def test_dialect_rejects(expr: str, fragment: str) -> None:
    with pytest.raises(CronError, match=fragment):
        validate_cron(expr)


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_timezone_accepts_iana(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize(
    "name", ["", "utc", "Mars/Olympus", "localtime", "posix/UTC", "../UTC", "Europe/Berlin/"]
)
def test_timezone_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        validate_timezone(name)


# --- cron matching (UTC) -------------------------------------------------------------------------

APRIL_1 = "2026-04-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("expr", "expected_days"),
    [
        # Both restricted: the 13th OR Fridays (2026-04-13 is a Monday).
        ("0 0 13 * 5", ["04-03", "04-10", "04-13", "04-17", "04-24", "05-01", "05-08", "05-13"]),
        ("0 0 1,15 * MON", ["04-06", "04-13", "04-15", "04-20", "04-27", "05-01", "05-04"]),
        # DOM starts with '*', so it counts as unrestricted and both must match (Vixie rule).
        ("0 0 */2 * 1", ["04-13", "04-27", "05-11", "05-25", "06-01", "06-15", "06-29"]),
        ("0 0 * * 1", ["04-06", "04-13", "04-20"]),
        ("0 0 * * sun", ["04-05", "04-12", "04-19"]),
        ("0 0 * * 0", ["04-05", "04-12", "04-19"]),
        ("0 0 * * 7", ["04-05", "04-12", "04-19"]),
        ("0 0 1 Apr-jun,DEC *", ["05-01", "06-01", "12-01"]),
    ],
)
def test_day_matching(expr: str, expected_days: list[str]) -> None:
    got = cron_sequence(expr, "UTC", APRIL_1, len(expected_days))
    assert got == [ms(f"2026-{day}T00:00:00+00:00") for day in expected_days]


def test_range_with_step() -> None:
    got = cron_sequence("0-30/5 * * * *", "UTC", "2026-04-01T10:00:00+00:00", 8)
    minutes = [5, 10, 15, 20, 25, 30]
    assert got == [ms(f"2026-04-01T10:{m:02d}:00+00:00") for m in minutes] + [
        ms("2026-04-01T11:00:00+00:00"),
        ms("2026-04-01T11:05:00+00:00"),
    ]


def test_weekdays_at_nine_in_zone() -> None:
    # Friday 2026-04-03 09:00 Berlin (CEST, +02:00), then Monday 04-06.
    got = cron_sequence("0 9 * * 1-5", BERLIN, "2026-04-03T06:00:00+00:00", 2)
    assert got == [ms("2026-04-03T09:00:00+02:00"), ms("2026-04-06T09:00:00+02:00")]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-04-01T10:00:00+00:00", "2026-04-01T10:01:00+00:00"),  # strictly after
        ("2026-04-01T09:59:59.999+00:00", "2026-04-01T10:00:00+00:00"),
        ("2026-04-01T10:00:00.001+00:00", "2026-04-01T10:01:00+00:00"),
    ],
)
def test_next_cron_slot_is_strictly_after(after: str, expected: str) -> None:
    assert next_cron_slot("* * * * *", "UTC", ms(after)) == ms(expected)


# --- DST (G-24) ----------------------------------------------------------------------------------
# New York 2026: clocks jump 02:00 EST -> 03:00 EDT on 03-08 (07:00Z) and fall back
# 02:00 EDT -> 01:00 EST on 11-01 (06:00Z). Berlin 2026: 02:00 CET -> 03:00 CEST on 03-29 (01:00Z),
# 03:00 CEST -> 02:00 CET on 10-25 (01:00Z).

DST_CASES = [
    # Fixed time in the spring gap: once, at the first instant after it; normal the next day.
    ("30 2 * * *", NY, "2026-03-07T17:00:00Z", ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
    ("30 2 * * *", BERLIN, "2026-03-28T12:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
    # Fixed time in the repeated hour: first occurrence (EDT / CEST) only.
    ("30 1 * * *", NY, "2026-10-31T16:00:00Z", ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
    ("30 2 * * *", BERLIN, "2026-10-24T12:00Z", ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
    # Wildcard hour across spring-forward: 02:00 and 02:30 collapse onto 03:00 EDT, fired once.
    (
        "*/30 * * * *",
        NY,
        "2026-03-08T05:10:00Z",
        [
            "2026-03-08T05:30:00Z",
            "2026-03-08T06:00:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
        ],
    ),
    # 02:30 is skipped, so it fires at 03:00 (cronsim alone would skip it).
    (
        "30 * * * *",
        NY,
        "2026-03-08T05:10:00Z",
        [
            "2026-03-08T05:30:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
        ],
    ),
    (
        "0 * * * *",
        BERLIN,
        "2026-03-28T23:30:00Z",
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
    ),
    # Every minute of a skipped hour: one firing at 03:00, then the next day's 02:00.
    ("* 2 * * *", NY, "2026-03-08T05:00:00Z", ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]),
    # Wildcard hour across fall-back: nothing during the second 01:xx (06:00Z-06:59Z).
    (
        "*/30 * * * *",
        NY,
        "2026-11-01T04:10:00Z",
        [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z",
        ],
    ),
    (
        "*/30 * * * *",
        BERLIN,
        "2026-10-25T00:10:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"],
    ),
    (
        "15 * * * *",
        BERLIN,
        "2026-10-24T23:50:00Z",
        ["2026-10-25T00:15:00Z", "2026-10-25T02:15:00Z", "2026-10-25T03:15:00Z"],
    ),
    # Asked from inside the second 01:xx: the first 01:45 (EDT) has passed, so next day's.
    ("45 1 * * *", NY, "2026-11-01T06:20:00Z", ["2026-11-02T06:45:00Z"]),
    # ... and a wildcard expression continues after the repeated hour, not inside it.
    ("*/15 * * * *", NY, "2026-11-01T06:20:00Z", ["2026-11-01T07:00:00Z"]),
]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), DST_CASES)
def test_dst(expr: str, tz: str, after: str, expected: list[str]) -> None:
    assert cron_sequence(expr, tz, after, len(expected)) == [ms(e) for e in expected]


def test_spring_forward_first_slot_is_0300_edt() -> None:
    slot = next_cron_slot("30 2 * * *", NY, ms("2026-03-07T12:00:00-05:00"))
    assert slot == ms("2026-03-08T03:00:00-04:00")


# --- intervals (G-25, G-26, §6.3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "interval", "after", "expected"),
    [
        # §6.3: hourly, slot 10:00:00 spawned at 10:00:03 -> next slot 11:00:00.
        (ms("2026-04-01T09:00:00Z"), HOUR, ms("2026-04-01T10:00:03Z"), ms("2026-04-01T11:00:00Z")),
        (0, 1000, 0, 1000),  # k >= 1: the anchor itself is never a slot
        (0, 1000, -5000, 1000),
        (0, 1000, 999, 1000),
        (0, 1000, 1000, 2000),  # strictly after
        (0, 1000, 1001, 2000),
        (500, 7 * DAY, 500 + 10 * 7 * DAY - 1, 500 + 10 * 7 * DAY),
    ],
)
def test_next_interval_slot(anchor: int, interval: int, after: int, expected: int) -> None:
    assert next_interval_slot(anchor, interval, after) == expected


def test_interval_day_ignores_dst() -> None:
    # G-26: a day is 86 400 s of absolute time even across New York's spring-forward.
    anchor = ms("2026-03-07T09:00:00-05:00")
    assert next_interval_slot(anchor, DAY, anchor) == ms("2026-03-08T10:00:00-04:00")


@pytest.mark.parametrize("interval", [0, -1000])
def test_interval_must_be_positive(interval: int) -> None:
    with pytest.raises(ValueError):
        next_interval_slot(0, interval, 0)


def test_first_slot() -> None:
    anchor = ms("2026-04-01T10:00:00Z")  # creation 10:00:00.750 truncated by the caller (G-25)
    assert first_slot(None, HOUR, "UTC", anchor) == ms("2026-04-01T11:00:00Z")
    assert first_slot(None, HOUR, NY, anchor) == ms("2026-04-01T11:00:00Z")
    assert first_slot("0 9 * * *", None, "UTC", anchor) == ms("2026-04-02T09:00:00Z")
    assert first_slot("0 10 * * *", None, "UTC", anchor) == ms("2026-04-02T10:00:00Z")
    assert first_slot("0 9 * * *", None, NY, anchor) == ms("2026-04-01T09:00:00-04:00")


@pytest.mark.parametrize(("cron", "interval"), [(None, None), ("* * * * *", MINUTE)])
def test_exactly_one_cadence(cron: str | None, interval: int | None) -> None:
    with pytest.raises(ValueError):
        first_slot(cron, interval, "UTC", 0)
    with pytest.raises(ValueError):
        latest_due_slot(cron, interval, "UTC", 0, 0, 0)
    with pytest.raises(ValueError):
        recompute_next_run(cron, interval, "UTC", 0, None, 0)


# --- coalescing (G-27) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "interval", "next_run", "now", "expected"),
    [
        (0, MINUTE, MINUTE, MINUTE + 500, (MINUTE, 2 * MINUTE)),  # on time, tick lag only
        (0, MINUTE, MINUTE, 3 * MINUTE, (3 * MINUTE, 4 * MINUTE)),  # now exactly on a slot
        (0, MINUTE, MINUTE, 3 * MINUTE - 1, (2 * MINUTE, 3 * MINUTE)),
        # Three hours of downtime on an hourly grid anchored at :00:07.
        (7000, HOUR, 7000 + HOUR, 7000 + 4 * HOUR + 5, (7000 + 4 * HOUR, 7000 + 5 * HOUR)),
        # 30 days on a one-second grid: arithmetic, no walk.
        (0, 1000, 1000, 30 * DAY + 999, (30 * DAY, 30 * DAY + 1000)),
        # A stored next_run off the grid with no grid point since: spawned once as stored.
        (0, HOUR, 90 * MINUTE, 100 * MINUTE, (90 * MINUTE, 2 * HOUR)),
    ],
)
def test_latest_due_interval(
    anchor: int, interval: int, next_run: int, now: int, expected: tuple[int, int]
) -> None:
    assert latest_due_slot(None, interval, "UTC", anchor, next_run, now) == expected


@pytest.mark.parametrize(
    ("expr", "tz", "next_run", "now", "expected"),
    [
        ("0 * * * *", "UTC", "2026-04-01T10:00Z", "2026-04-01T10:00:01Z", ("10:00", "11:00")),
        ("0 * * * *", "UTC", "2026-04-01T10:00Z", "2026-04-01T10:00:00Z", ("10:00", "11:00")),
        ("0 * * * *", "UTC", "2026-04-01T10:00Z", "2026-04-01T13:20:00Z", ("13:00", "14:00")),
        ("0 * * * *", "UTC", "2026-04-01T10:00Z", "2026-04-01T12:59:59.999Z", ("12:00", "13:00")),
        ("0 * * * *", "UTC", "2026-04-01T10:00Z", "2026-04-01T11:00:00Z", ("11:00", "12:00")),
        # Fall-back: 06:00Z and 06:30Z are the second 01:00/01:30 and are not slots.
        ("*/30 * * * *", NY, "2026-11-01T05:30Z", "2026-11-01T06:45:00Z", ("05:30", "07:00")),
    ],
)
def test_latest_due_cron(
    expr: str, tz: str, next_run: str, now: str, expected: tuple[str, str]
) -> None:
    day = next_run[:10]
    want = (ms(f"{day}T{expected[0]}:00Z"), ms(f"{day}T{expected[1]}:00Z"))
    assert latest_due_slot(expr, None, tz, 0, ms(next_run), ms(now)) == want


def test_latest_due_cron_after_thirty_days_of_minutely_slots() -> None:
    got = latest_due_slot(
        "* * * * *", None, "UTC", 0, ms("2026-01-01T00:01:00Z"), ms("2026-01-31T12:34:56.789Z")
    )
    assert got == (ms("2026-01-31T12:34:00Z"), ms("2026-01-31T12:35:00Z"))


def test_latest_due_cron_years_of_sparse_slots() -> None:
    got = latest_due_slot(
        "0 0 29 2 *", None, BERLIN, 0, ms("2028-02-29T00:00:00+01:00"), ms("2037-06-01T00:00Z")
    )
    assert got == (ms("2036-02-29T00:00:00+01:00"), ms("2040-02-29T00:00:00+01:00"))


def test_latest_due_cron_off_sequence_next_run_is_spawned_once() -> None:
    got = latest_due_slot(
        "0 * * * *", None, "UTC", 0, ms("2026-04-01T10:30Z"), ms("2026-04-01T10:45Z")
    )
    assert got == (ms("2026-04-01T10:30Z"), ms("2026-04-01T11:00Z"))


def test_latest_due_requires_a_due_schedule() -> None:
    with pytest.raises(ValueError):
        latest_due_slot(None, MINUTE, "UTC", 0, 2 * MINUTE, 2 * MINUTE - 1)


# --- PATCH recompute (G-31) ----------------------------------------------------------------------

NOW = ms("2026-04-01T15:20:34.567Z")


@pytest.mark.parametrize(
    ("cron", "interval", "tz", "anchor", "last_run", "now", "expected"),
    [
        # Cron: anchor kept, first match strictly after now.
        ("0 * * * *", None, "UTC", 123, None, NOW, (123, ms("2026-04-01T16:00Z"))),
        ("0 * * * *", None, "UTC", 123, 5, ms("2026-04-01T16:00Z"), (123, ms("2026-04-01T17:00Z"))),
        ("0 9 * * *", None, NY, 123, None, NOW, (123, ms("2026-04-02T09:00:00-04:00"))),
        # Interval with a spawned slot: keep that slot's grid (13:00 + k*25 min > 15:20:34).
        (
            None,
            25 * MINUTE,
            "UTC",
            0,
            ms("2026-04-01T13:00Z"),
            NOW,
            (ms("2026-04-01T13:00Z"), ms("2026-04-01T15:30Z")),
        ),
        (
            None,
            HOUR,
            "UTC",
            0,
            ms("2026-04-01T13:00Z"),
            ms("2026-04-01T16:00Z"),
            (ms("2026-04-01T13:00Z"), ms("2026-04-01T17:00Z")),
        ),
        # Interval, nothing spawned yet: re-anchor at now truncated to the second.
        (
            None,
            HOUR,
            NY,
            0,
            None,
            NOW,
            (ms("2026-04-01T15:20:34Z"), ms("2026-04-01T16:20:34Z")),
        ),
    ],
)
def test_recompute_next_run(
    cron: str | None,
    interval: int | None,
    tz: str,
    anchor: int,
    last_run: int | None,
    now: int,
    expected: tuple[int, int],
) -> None:
    assert recompute_next_run(cron, interval, tz, anchor, last_run, now) == expected


# --- completion (G-29) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_run", "runs", "run_count", "stop_at", "expected"),
    [
        (1000, None, 0, None, False),
        (1000, 3, 2, None, False),
        (1000, 3, 3, None, True),
        (1000, 3, 4, None, True),  # PATCH lowered runs below run_count
        (1000, None, 7, 1000, False),  # slot exactly at stop_at is still spawned
        (1001, None, 7, 1000, True),
        (1001, 5, 0, 1000, True),
        (None, None, 0, None, True),  # no further slot at all
    ],
)
def test_completes_before(
    next_run: int | None, runs: int | None, run_count: int, stop_at: int | None, expected: bool
) -> None:
    assert completes_before(next_run, runs, run_count, stop_at) is expected
