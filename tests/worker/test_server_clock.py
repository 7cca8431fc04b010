"""`ServerClock`: a job sent ahead starts at its due instant by the server's clock, never before
it, late only by the shortest message transit seen (plus the drift allowance)."""

from __future__ import annotations

import random

import pytest

from chronos_worker.server_clock import DRIFT_MS_PER_SECOND, ServerClock

OFFSET_MS = 1.8e12  # server clock (ms) - worker clock (s) × 1000


def test_without_a_faster_message_a_job_starts_its_start_in_after_it_arrived() -> None:
    clock = ServerClock()
    assert clock.bound(5.0) is None
    arrived = 10.0
    sent_at = OFFSET_MS + arrived * 1000 - 2.0  # 2 ms on its way
    clock.observe(sent_at, arrived)
    assert clock.local_time(sent_at + 8.0, arrived) == pytest.approx(arrived + 0.008)


def test_a_slow_message_is_corrected_by_the_fastest_one_seen() -> None:
    clock = ServerClock()
    clock.observe(OFFSET_MS + 10_000 - 0.2, 10.0)  # 0.2 ms on its way
    arrived = 11.0  # a second later, after 4 ms on its way
    clock.observe(OFFSET_MS + 11_000 - 4.0, arrived)
    start = clock.local_time(OFFSET_MS + 11_000 - 4.0 + 8.0, arrived)
    due = arrived + (8.0 - 4.0) / 1000  # by the true offset
    late_ms = (start - due) * 1000
    assert late_ms == pytest.approx(0.2 + DRIFT_MS_PER_SECOND * 1.0, abs=1e-3)


def test_a_job_whose_instant_passed_by_the_bound_starts_on_arrival() -> None:
    clock = ServerClock()
    clock.observe(OFFSET_MS + 10_000, 10.0)
    clock.observe(OFFSET_MS + 10_000 - 30.0, 10.0)  # 30 ms on its way
    assert clock.local_time(OFFSET_MS + 10_000 - 30.0 + 5.0, 10.0) == 10.0


@pytest.mark.parametrize("drift_ppm", [-500.0, 0.0, 500.0])
def test_never_before_the_due_instant_under_any_drift_within_the_allowance(
    drift_ppm: float,
) -> None:
    """Random transits (0.05-5 ms) and gaps, the server's clock drifting against the worker's
    by up to 500 ppm: no job starts before its due instant by the server's clock, and none
    later than its own message's transit."""
    rng = random.Random(int(drift_ppm) + 7)
    clock = ServerClock()
    now = 100.0
    for _ in range(5_000):
        now += rng.choice([0.001, 0.005, 0.2, 3.0])
        transit_ms = rng.uniform(0.05, 5.0)
        left = now - transit_ms / 1000
        server_ms = OFFSET_MS + left * 1000 * (1 + drift_ppm / 1e6)  # its clock when it left
        start_in = rng.uniform(0.5, 20.0)
        clock.observe(server_ms, now)
        start = clock.local_time(server_ms + start_in, now)
        server_at_start = OFFSET_MS + start * 1000 * (1 + drift_ppm / 1e6)
        assert server_at_start >= server_ms + start_in - 1e-3 or start == now
        assert start <= now + start_in / 1000 + 1e-6
