"""Creating jobs, apart from any transport: one (`create_job`, written together with the other
creates waiting at that moment: `group_commit.JobWriter`) or several in one transaction
(`create_jobs`). Admission is nudged once per call, and only for a job due before it wakes.
"""

from __future__ import annotations

from chronos_server.core.models import Job
from chronos_server.errors import ChronosError
from chronos_server.pipeline.services import Pipeline


async def create_job(p: Pipeline, job: Job) -> Job:
    """Raises `IdempotencyKeyConflict` naming the job that holds its key."""
    result = await p.job_writer.insert(job)
    if isinstance(result, ChronosError):
        raise result
    p.admit_by(job.run_at)
    return result


async def create_jobs(p: Pipeline, jobs: list[Job]) -> list[Job | ChronosError]:
    """All in ONE transaction, in order; each created or refused (`IdempotencyKeyConflict`,
    also for a key given earlier in `jobs`) on its own."""
    if not jobs:
        return []
    results = await p.store.insert_jobs(jobs)
    due = [r.run_at for r in results if isinstance(r, Job)]
    if due:
        p.admit_by(min(due))
    return results
