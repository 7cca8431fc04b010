"""Lease extension (extension: `POST /v1/worker/executions/:id/heartbeat` and the worker
channel's `heartbeat`): a running execution's `lease_expires_at` moved forward, compare-and-set
on `running`, refused like a result report (spec §10.4: 404, 409 `lease_expired`, 409
`execution_already_finished`)."""

from __future__ import annotations

from chronos_server import errors
from chronos_server.core.models import Execution
from chronos_server.store.rows import execution_from_row
from chronos_server.store.transactions.outcomes import refusal
from chronos_server.store.transactions.tx import Tx


def extend_leases(
    tx: Tx, account_id: str, items: list[tuple[str, int | None]], now: int
) -> list[Execution | errors.ChronosError]:
    """For each `(execution_id, seconds)`: the lease ends no earlier than `now + seconds` (the
    job's `timeout` when `seconds` is None); never shortened. The executions as now stored, or
    each one's refusal."""
    results: list[Execution | errors.ChronosError] = []
    for execution_id, seconds in items:
        row = tx.one("get_execution", id=execution_id, account_id=account_id)
        refused = refusal(row)
        if refused is not None:
            results.append(refused)
            continue
        assert row is not None
        if seconds is None:
            job = tx.one("get_job_any", id=row["job_id"])
            assert job is not None
            seconds = int(job["timeout"])
        if tx.run("extend_lease", id=execution_id, until=now + seconds * 1000) != 1:
            # Finished (or timed out by a sweep) since the read: answer as for its outcome.
            results.append(refusal(tx.one("get_execution_any", id=execution_id)) or _gone())
            continue
        done = tx.one("get_execution_any", id=execution_id)
        assert done is not None
        results.append(execution_from_row(done))
    return results


def _gone() -> errors.ChronosError:
    return errors.ExecutionAlreadyFinished()
