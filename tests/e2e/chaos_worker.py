"""The worker of the chaos test (tests/e2e/test_chaos.py), run by the real `chronos-worker`:

    chronos-worker --server URL --api-key KEY --concurrency 8 tests.e2e.chaos_worker:chronos

Its one handler, `chaos`, appends `job_id execution_id attempt` to the file named by
`CHAOS_RUNS_FILE`, so the test can tell every run of a handler (a rerun included) from the
executions the server recorded, then works for 50 ms, so that a kill finds jobs in flight. A
short `retry_delay_ms` makes the worker find the restarted server quickly and retry its reports
across the restart.
"""

from __future__ import annotations

import os
import time

from chronos_worker import Chronos, ChronosContext

chronos = Chronos(retry_delay_ms=200)


@chronos.worker.handle("chaos")
def run(ctx: ChronosContext) -> None:
    # One write of one short line to a file opened for appending: lines from the worker's
    # threads never interleave.
    with open(os.environ["CHAOS_RUNS_FILE"], "a") as runs:
        runs.write(f"{ctx.job_id} {ctx.execution_id} {ctx.attempt}\n")
    time.sleep(0.05)
