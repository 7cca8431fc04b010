"""The circuit breaker (store/breaker.py): the pure state machine with explicit instants, then the
store's side (`StoreBreaker`: arming, refusing, the probe loop) under MockClock with a fake probe.
The PostgreSQL store's use of it is tested against a real database in test_postgres.py."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chronos_server.errors import StoreUnavailable
from chronos_server.store.breaker import (
    BreakerOpen,
    BreakerState,
    CircuitBreaker,
    StoreBreaker,
)

# --- the state machine ------------------------------------------------------------------------


def state(b: CircuitBreaker) -> BreakerState:
    return b.state  # read through a call: mypy would keep an earlier assert's narrowing


def test_a_failure_opens_it_and_the_first_probe_is_due_half_a_second_later() -> None:
    b = CircuitBreaker()
    assert b.closed and b.seconds_to_probe(10.0) is None
    assert b.record_failure(10.0, generation=0)
    assert state(b) is BreakerState.OPEN and b.trips == 1 and b.opened_at == 10.0
    assert b.seconds_to_probe(10.2) == pytest.approx(0.3)
    assert not b.begin_probe(10.49) and state(b) is BreakerState.OPEN
    assert b.begin_probe(10.5) and state(b) is BreakerState.PROBING and b.probes == 1
    assert not b.closed  # half-open: only the probe goes to the database


def test_more_failures_while_open_or_probing_change_nothing() -> None:
    b = CircuitBreaker()
    b.record_failure(10.0, 0)
    assert not b.record_failure(10.1, 0)
    assert b.next_probe_at == 10.5 and b.trips == 1
    b.begin_probe(10.5)
    assert not b.record_failure(10.6, 0)
    assert state(b) is BreakerState.PROBING


def test_failed_probes_back_off_to_one_second() -> None:
    b = CircuitBreaker()
    b.record_failure(0.0, 0)
    due = []
    for _ in range(3):
        assert b.begin_probe(b.next_probe_at or 0.0)
        b.end_probe((b.next_probe_at or 0.0) + 0.25, reachable=False)  # a probe takes 0.25 s
        assert state(b) is BreakerState.OPEN
        due.append(b.next_probe_at)
    assert due == [1.75, 3.0, 4.25]  # 0.5 + 0.25 + 1.0, then 1.0 apart (the cap)


def test_a_successful_probe_closes_it_and_starts_a_new_generation() -> None:
    b = CircuitBreaker()
    b.record_failure(0.0, 0)
    b.begin_probe(0.5)
    b.end_probe(0.6, reachable=True)
    assert b.closed and b.generation == 1 and b.opened_at is None and b.next_probe_at is None
    # A call that began before the recovery (generation 0) and fails late says nothing now.
    assert not b.record_failure(0.7, generation=0) and b.closed
    # A call of the new generation does; the probe interval starts again from the minimum.
    assert b.record_failure(0.8, generation=1)
    assert b.next_probe_at == pytest.approx(1.3) and b.trips == 2


def test_end_probe_without_a_probe_is_a_bug() -> None:
    b = CircuitBreaker()
    with pytest.raises(ValueError, match="closed"):
        b.end_probe(0.0, reachable=True)
    b.record_failure(0.0, 0)
    with pytest.raises(ValueError, match="open"):
        b.end_probe(0.1, reachable=False)


def test_closing_a_closed_breaker_keeps_its_generation() -> None:
    b = CircuitBreaker()
    b.close()
    assert b.closed and b.generation == 0


# --- the store's side, under MockClock -------------------------------------------------------


async def test_unarmed_it_never_refuses() -> None:
    """No probe running (a store used outside `serve`): nothing could ever close it again."""
    breaker = StoreBreaker()
    breaker.failed(breaker.generation)
    assert breaker.machine.closed and not breaker.rejects()
    breaker.check()  # no exception


class FakeProbe:
    """Unreachable for the first `failures` probes; records when each probe ran."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.times: list[float] = []
        self.reached = trio.Event()

    async def __call__(self) -> bool:
        self.times.append(trio.current_time())
        await trio.sleep(0.25)  # a probe takes time too; calls keep being refused meanwhile
        if len(self.times) > self.failures:
            self.reached.set()
            return True
        return False


async def test_open_it_refuses_at_once_and_the_probe_closes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker, probe = StoreBreaker(), FakeProbe(failures=2)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(breaker.run_probe, probe)
            await trio.sleep(30)  # closed: the probe loop waits, it does not poll
            assert probe.times == [] and breaker.armed
            generation, t0 = breaker.generation, trio.current_time()
            breaker.failed(generation)
            assert breaker.rejects()
            with pytest.raises(BreakerOpen) as refused:
                breaker.check()
            assert isinstance(refused.value, StoreUnavailable)
            assert refused.value.code == "service_unavailable" and refused.value.status == 503
            await probe.reached.wait()
            await trio.testing.wait_all_tasks_blocked()
            # 0.5 s after the trip; each failed probe (0.25 s) then waits 1.0 s (the cap).
            assert [t - t0 for t in probe.times] == [0.5, 1.75, 3.0]
            assert breaker.machine.closed and breaker.generation == generation + 1
            breaker.check()
            assert breaker.statistics() == {
                "state": "closed",
                "trips": 1,
                "probes": 3,
                "rejected": 1,
            }
            breaker.failed(generation)  # late, from before the recovery: ignored
            assert breaker.machine.closed
            breaker.failed(breaker.generation)  # a new outage: the loop wakes again
            await trio.sleep(0.5)
            await trio.testing.wait_all_tasks_blocked()
            assert len(probe.times) == 4
            nursery.cancel_scope.cancel()


async def test_stopping_the_probe_disarms_and_closes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = StoreBreaker()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(breaker.run_probe, FakeProbe(failures=1000))
            breaker.failed(breaker.generation)
            await trio.sleep(5)
            assert breaker.rejects() and breaker.machine.probes >= 1
            nursery.cancel_scope.cancel()
    assert not breaker.armed and breaker.machine.closed and not breaker.rejects()
