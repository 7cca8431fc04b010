"""The store's transactions as plain synchronous functions over a `Tx`, shared by every dialect.

Each function here runs inside ONE database transaction opened by the dialect's store (in a worker
thread). Dialects differ only in their named SQL; the decisions (which slot, which retry) come from
the pure `core` functions, applied here as compare-and-set writes.

Each module is one part of the lifecycle: `tx` (the `Tx` protocol and `new_id`), `schedules`,
`jobs`, `pipeline` (admission, dispatch, claims, starting executions) and `outcomes` (finishing
executions, the sweep). Callers use the names re-exported here (`t.<name>`).
"""

from __future__ import annotations

from chronos_server.store.transactions.jobs import (
    SHOWN_AS,
    cancel_job,
    insert_holder,
    insert_job,
    insert_jobs,
    ready_handlers,
    replay_job,
    replay_jobs,
    stats_from_rows,
)
from chronos_server.store.transactions.leases import extend_leases
from chronos_server.store.transactions.outcomes import (
    finish_execution,
    finish_executions,
    record_push_outcomes,
    refusal,
    sweep,
)
from chronos_server.store.transactions.pipeline import (
    admit_due,
    any_held,
    claim_ready_jobs,
    claimed_from_started,
    held_recheck,
    next_wakeup,
    push_wakeup,
    queue_admitted,
    ready_pull_jobs,
    release_held_jobs,
    start_executions,
    start_push_jobs,
    started_at,
    take_due_jobs,
    unclaim,
    with_limited_released,
)
from chronos_server.store.transactions.retention import count_prunable, prune
from chronos_server.store.transactions.schedules import (
    archive_schedule,
    pause_schedule,
    replace_schedule,
    resume_schedule,
    run_schedule_now,
    spawn_due_schedules,
)
from chronos_server.store.transactions.tx import Tx, new_id

__all__ = [
    "SHOWN_AS",
    "Tx",
    "admit_due",
    "any_held",
    "archive_schedule",
    "cancel_job",
    "claim_ready_jobs",
    "claimed_from_started",
    "count_prunable",
    "extend_leases",
    "finish_execution",
    "finish_executions",
    "held_recheck",
    "insert_holder",
    "insert_job",
    "insert_jobs",
    "new_id",
    "next_wakeup",
    "pause_schedule",
    "prune",
    "push_wakeup",
    "queue_admitted",
    "ready_handlers",
    "ready_pull_jobs",
    "record_push_outcomes",
    "refusal",
    "release_held_jobs",
    "replace_schedule",
    "replay_job",
    "replay_jobs",
    "resume_schedule",
    "run_schedule_now",
    "spawn_due_schedules",
    "start_executions",
    "start_push_jobs",
    "started_at",
    "stats_from_rows",
    "sweep",
    "take_due_jobs",
    "unclaim",
    "with_limited_released",
]
