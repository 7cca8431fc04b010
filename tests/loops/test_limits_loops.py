"""Handler limits with the loops running, under MockClock: a finished execution wakes admission
at once (the idle pass is a minute away, so a poll would show), and the start rate's next token
is a timed wake-up at its exact virtual instant."""

from __future__ import annotations

import trio
import trio.testing

from chronos_server.core.models import ExecutionStatus, JobStatus, Outcome
from chronos_server.pipeline.claims import claim_jobs
from chronos_server.pipeline.outcomes import record_report
from tests.loops import test_loops
from tests.loops.test_loops import ORIGIN_MS, World

DONE = Outcome(ExecutionStatus.COMPLETED, result=None)
world = test_loops.world  # the fixture: an in-memory SQLite pipeline under MockClock


async def test_a_finished_execution_lets_the_next_waiting_job_go_at_once(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    p = world.p
    await p.store.set_handler_limits(world.account_id, "h", 1, None, world.now())
    await world.nursery.start(p.limited.run, p.store)
    world.start_loops()
    first = await world.add_job(run_at=ORIGIN_MS)
    second = await world.add_job(run_at=ORIGIN_MS)
    [claimed] = await claim_jobs(p, world.account_id, ["h"], None, 20)
    assert claimed.job.id == first.id
    await trio.sleep(5)
    await trio.testing.wait_all_tasks_blocked()
    assert await world.status(second.id) is JobStatus.QUEUED  # waits for the limit
    finished_at = world.now()
    await record_report(p, world.account_id, claimed.execution.id, DONE)
    [next_one] = await claim_jobs(p, world.account_id, ["h"], None, 20)
    assert next_one.job.id == second.id
    assert world.now() == finished_at  # no timer between the finish and the next start


async def test_the_start_rate_releases_each_job_at_its_token_time(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    p = world.p
    await p.store.set_handler_limits(world.account_id, "h", None, 2.0, world.now())
    await world.nursery.start(p.limited.run, p.store)
    world.start_loops()
    start = world.now()
    for _ in range(5):
        await world.add_job(run_at=start)
    started = []
    for _ in range(5):
        [claimed] = await claim_jobs(p, world.account_id, ["h"], None, 20)
        started.append(world.now() - start)
        await record_report(p, world.account_id, claimed.execution.id, DONE)
    assert started == [0, 500, 1000, 1500, 2000]
