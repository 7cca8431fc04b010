"""Creating jobs, apart from any transport: one (`create_job`, written together with the other
creates waiting at that moment: `group_commit.JobWriter`) or several in one transaction
(`create_jobs`). Admission is nudged once per call, and only for a job due before it wakes.
"""

from __future__ import annotations

from chronos_server.core.models import Job
from chronos_server.errors import ChronosError
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.base import ReplayFilter
from chronos_server.telemetry import logs


def _created(how: str, jobs: list[Job]) -> None:
    if logs.states_enabled():
        for job in jobs:
            logs.state_change(
                "job %s created (%s, handler %s, due %d)",
                job.id,
                how,
                job.handler or "-",
                job.run_at,
                job_id=job.id,
                handler=job.handler,
                status="pending",
                replay_of=job.replay_of,
            )


async def create_job(p: Pipeline, job: Job) -> Job:
    """Raises `IdempotencyKeyConflict` naming the job that holds its key."""
    result = await p.job_writer.insert(job)
    if isinstance(result, ChronosError):
        raise result
    p.metrics.job_created("api")
    _created("api", [result])
    p.admit_by(job.run_at)
    return result


async def create_jobs(p: Pipeline, jobs: list[Job]) -> list[Job | ChronosError]:
    """All in ONE transaction, in order; each created or refused (`IdempotencyKeyConflict`,
    also for a key given earlier in `jobs`) on its own."""
    if not jobs:
        return []
    results = await p.store.insert_jobs(jobs)
    due = [r.run_at for r in results if isinstance(r, Job)]
    p.metrics.job_created("batch", len(due))
    _created("batch", [r for r in results if isinstance(r, Job)])
    if due:
        p.admit_by(min(due))
    return results


async def replay_job(p: Pipeline, account_id: str, job_id: str, new_id: str) -> Job:
    """The job run again as a new one-off job, due now (`Store.replay_job`)."""
    now = p.clock.now_ms()
    job = await p.store.replay_job(account_id, job_id, new_id, now)
    p.metrics.job_created("replay")
    _created("replay", [job])
    p.admit_by(job.run_at)
    return job


async def replay_jobs(p: Pipeline, account_id: str, which: ReplayFilter) -> list[Job]:
    """The finished jobs `which` selects run again, in one transaction; admission woken once."""
    jobs = await p.store.replay_jobs(account_id, which, p.clock.now_ms())
    p.metrics.job_created("replay", len(jobs))
    _created("replay", jobs)
    if jobs:
        p.admit_by(min(j.run_at for j in jobs))
    return jobs
