"""Retry backoff against the §8.3 formula and table (G-13)."""

from __future__ import annotations

import random

import pytest

from chronos_server.core.backoff import BASE_MS, CAP_MS, retry_delay_ms


class _Stub(random.Random):
    """randint always returns the low or the high end of the requested range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high
        self.calls: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        return b if self.high else a


# (failed attempt, base ms) from the §8.3 table; delay range is [base, min(2*base, cap)].
TABLE = [
    (1, 1_000),
    (2, 2_000),
    (3, 4_000),
    (4, 8_000),
    (5, 16_000),
    (6, 32_000),
    (7, 64_000),
    (8, 128_000),
    (9, 256_000),
    (10, 512_000),
    (11, 1_024_000),
    (12, 2_048_000),
    (13, 3_600_000),
    (14, 3_600_000),
]


def test_constants() -> None:
    assert (BASE_MS, CAP_MS) == (1000, 3_600_000)


@pytest.mark.parametrize(("attempt", "base"), TABLE)
def test_no_jitter_gives_base(attempt: int, base: int) -> None:
    rng = _Stub(high=False)
    assert retry_delay_ms(attempt, rng) == base
    assert rng.calls == [(0, base)]


@pytest.mark.parametrize(("attempt", "base"), TABLE)
def test_full_jitter_gives_double_capped(attempt: int, base: int) -> None:
    assert retry_delay_ms(attempt, _Stub(high=True)) == min(2 * base, 3_600_000)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 1_000, 2_000),
        (3, 4_000, 8_000),
        (10, 512_000, 1_024_000),
        (11, 1_024_000, 2_048_000),
        (12, 2_048_000, 3_600_000),  # "34-60 min": the sum is capped
        (13, 3_600_000, 3_600_000),
    ],
)
def test_seeded_draws_stay_in_table_range(attempt: int, low: int, high: int) -> None:
    rng = random.Random(20260401)
    delays = {retry_delay_ms(attempt, rng) for _ in range(200)}
    assert min(delays) >= low
    assert max(delays) <= high
    if low != high:
        assert len(delays) > 1  # the jitter really is drawn


@pytest.mark.parametrize("attempt", range(1, 15))
def test_seeded_draw_is_base_plus_randint(attempt: int) -> None:
    base = dict(TABLE)[attempt]
    expected = min(base + random.Random(attempt).randint(0, base), CAP_MS)
    assert retry_delay_ms(attempt, random.Random(attempt)) == expected


@pytest.mark.parametrize("attempt", [13, 25, 1_000, 10**9])
def test_late_attempts_are_exactly_one_hour(attempt: int) -> None:
    assert retry_delay_ms(attempt, _Stub(high=False)) == 3_600_000
    assert retry_delay_ms(attempt, _Stub(high=True)) == 3_600_000


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError):
        retry_delay_ms(attempt, random.Random(0))
