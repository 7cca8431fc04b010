"""Pause and resume in the store: refusals, and how the other schedule writes treat a paused
schedule (README "Schedule policies"). The timelines are in test_policy_timelines.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chronos_server import errors
from chronos_server.core.models import CatchUp, JobStatus, Overlap, ScheduleStatus, Trigger
from chronos_server.store.base import Store

from .conftest import MINUTE, T0, Accounts, make_schedule, must_schedule, schedule_jobs
from .test_spawn_key_migration import OldDatabase, old_postgres, old_sqlite


async def test_pause_and_resume_refusals(store: Store, acct: Accounts) -> None:
    s = make_schedule(acct.a)
    await store.insert_schedule(s)
    for change in (store.pause_schedule, store.resume_schedule):
        with pytest.raises(errors.ScheduleNotFound):
            await change(acct.b, s.id, T0 + 1)  # another account's
        with pytest.raises(errors.ScheduleNotFound):
            await change(acct.a, "sch-missing", T0 + 1)
    done = make_schedule(acct.a, status=ScheduleStatus.COMPLETED)
    await store.insert_schedule(done)
    await store.archive_schedule(acct.a, s.id, T0 + 2)
    for change in (store.pause_schedule, store.resume_schedule):
        with pytest.raises(errors.ScheduleArchived):
            await change(acct.a, s.id, T0 + 3)
        with pytest.raises(errors.ScheduleCompleted):
            await change(acct.a, done.id, T0 + 3)


async def test_a_paused_schedule_is_never_due(store: Store, acct: Accounts) -> None:
    s = make_schedule(acct.a)
    await store.insert_schedule(s)
    await store.pause_schedule(acct.a, s.id, T0 + 1)
    assert await store.spawn_due_schedules(T0 + 10 * MINUTE, 100) == 0
    assert await store.next_wakeup() is None
    assert await schedule_jobs(store, acct.a, s.id) == []


async def test_archive_ends_a_pause(store: Store, acct: Accounts) -> None:
    s = make_schedule(acct.a)
    await store.insert_schedule(s)
    await store.pause_schedule(acct.a, s.id, T0 + 1)
    archived = await store.archive_schedule(acct.a, s.id, T0 + 2)
    assert archived.status is ScheduleStatus.ARCHIVED
    assert (archived.paused_at, archived.paused_next_run_at, archived.next_run_at) == (None,) * 3


async def test_run_now_keeps_a_pause_and_completes_it_on_the_last_run(
    store: Store, acct: Accounts
) -> None:
    s = make_schedule(acct.a, runs=2)
    await store.insert_schedule(s)
    await store.pause_schedule(acct.a, s.id, T0 + 1)
    job = await store.run_schedule_now(acct.a, s.id, "job-manual-1", T0 + 2)
    assert job.first_trigger is Trigger.MANUAL
    after = await must_schedule(store, acct.a, s.id)
    assert (after.status, after.run_count, after.paused_at) == (ScheduleStatus.ACTIVE, 1, T0 + 1)
    assert (after.next_run_at, after.paused_next_run_at) == (None, T0 + MINUTE)
    await store.run_schedule_now(acct.a, s.id, "job-manual-2", T0 + 3)
    done = await must_schedule(store, acct.a, s.id)
    assert (done.status, done.run_count, done.paused_at) == (ScheduleStatus.COMPLETED, 2, None)


async def test_policies_round_trip(store: Store, acct: Accounts) -> None:
    s = replace(
        make_schedule(acct.a),
        catch_up=CatchUp.ALL,
        catch_up_limit=1000,
        overlap=Overlap.CANCEL_PREVIOUS,
        paused_at=T0 + 5,
        paused_next_run_at=T0 + MINUTE,
        next_run_at=None,
    )
    await store.insert_schedule(s)
    assert await store.get_schedule(acct.a, s.id) == s


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_upgrade_gives_existing_schedules_todays_behaviour(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A database at version 3: after 0004 its schedules are `latest`/`allow`, not paused, and
    spawn as before; the held-job index is there for the queue policy."""
    if dialect == "postgres":
        request.getfixturevalue("postgres_url")
        opened = old_postgres(monkeypatch, version=3)
    else:
        opened = old_sqlite(tmp_path, monkeypatch, version=3)
    with opened as db:
        await _upgrade_and_spawn(db)


async def _upgrade_and_spawn(db: OldDatabase) -> None:
    db.run("insert_account", {"id": "acc-1", "name": "acme", "signing_secret": None, "now": T0})
    schedule = make_schedule("acc-1")
    db.insert_schedule(schedule)
    assert db.migrate()[0] == "0004_schedule_policies.sql"  # and every later one
    async with db.open() as store:
        after = await must_schedule(store, "acc-1", schedule.id)
        assert after == schedule  # the defaults: latest, 10, allow, not paused
        assert await store.spawn_due_schedules(T0 + 10 * MINUTE + 5, 100) == 1
        [job] = await schedule_jobs(store, "acc-1", schedule.id)
        assert (job.scheduled_for, job.status, job.held) == (
            T0 + 10 * MINUTE,
            JobStatus.PENDING,
            False,
        )
