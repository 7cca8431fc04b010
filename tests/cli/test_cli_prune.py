"""`chronos prune [--dry-run]` against a SQLite file, with a clock the test sets: the dry run
counts and deletes nothing; the real one deletes exactly that; `off` prunes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from chronos_server import cli
from chronos_server.core.models import PULL, Job, JobStatus, Trigger
from chronos_server.settings import DAY_MS
from chronos_server.store.open import open_store
from chronos_server.store.transactions import new_id

T0 = 1_800_000_000_000


class SetClock:
    def now_ms(self) -> int:
        return T0 + 40 * DAY_MS


def job(account_id: str) -> Job:
    return Job(
        id=new_id(), account_id=account_id, schedule_id=None, name="j", description=None,
        handler="h", delivery=PULL, payload=None, timeout=30, max_retries=3,
        idempotency_key=None, status=JobStatus.PENDING, scheduled_for=T0 + 10**12,
        run_at=T0 + 10**12, attempt_count=0, last_execution_id=None,
        first_trigger=Trigger.API, created_at=T0, updated_at=T0,
    )  # fmt: skip


async def seed(db: str) -> tuple[str, list[str], str]:
    async with open_store(db) as store:
        account, _ = await store.ensure_account("default", T0)
        old = [job(account.id) for _ in range(3)]
        waiting = job(account.id)
        await store.insert_jobs([*old, waiting])
        for j in old:
            await store.cancel_job(account.id, j.id, T0)
        return account.id, [j.id for j in old], waiting.id


async def exists(db: str, account_id: str, job_id: str) -> bool:
    async with open_store(db) as store:
        return await store.get_job(account_id, job_id) is not None


def test_prune_dry_run_then_for_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "SystemClock", SetClock)
    monkeypatch.delenv("CHRONOS_RETENTION", raising=False)
    db = f"sqlite:///{tmp_path / 'chronos.db'}"
    account_id, old, waiting = trio.run(seed, db)

    cli.main(["prune", "--database-url", db, "--dry-run"])
    out = capsys.readouterr().out.strip()
    assert out.startswith("Would delete 3 job(s) (cancelled 3), 0 execution(s), 0 schedule(s)")
    assert "completed=30d" in out
    assert all(trio.run(exists, db, account_id, j) for j in old)

    cli.main(["prune", "--database-url", db, "--retention", "cancelled=60d"])
    assert capsys.readouterr().out.startswith("Deleted 0 job(s), 0 execution(s)")
    monkeypatch.setenv("CHRONOS_RETENTION", "off")
    cli.main(["prune", "--database-url", db])
    assert capsys.readouterr().out.strip() == "Retention is off: nothing to prune"
    assert all(trio.run(exists, db, account_id, j) for j in old)

    monkeypatch.delenv("CHRONOS_RETENTION")
    cli.main(["prune", "--database-url", db])
    assert capsys.readouterr().out.startswith("Deleted 3 job(s) (cancelled 3)")
    assert not any(trio.run(exists, db, account_id, j) for j in old)
    assert trio.run(exists, db, account_id, waiting)


def test_prune_refuses_a_bad_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["prune", "--database-url", f"sqlite:///{tmp_path}/x.db", "--retention", "9y"])
    assert exit_.value.code == 2 and "CHRONOS_RETENTION" in capsys.readouterr().err
