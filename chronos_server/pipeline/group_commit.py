"""`JobWriter`: group commit for single job creates.

Each create used to be its own transaction, with its own worker-thread hop, pool checkout and
commit; under concurrent creates those per-write costs, not the rows, bound the throughput. Here
the creates that arrive while a write is in flight wait for the next one, and that next write
takes all of them (up to `max_group`) in ONE store call (`Store.insert_jobs`: one transaction on
SQLite, one statement on PostgreSQL). When nothing is in flight a create is written at once, so
an idle server adds no latency; under load each write carries what arrived during the last.

Each create gets its own answer: its job, or its own idempotency conflict (two creates with one
key in one group are answered as if made in turn: the second names the first's job). A write
that fails fails exactly the creates it carried, with the store's error (503 for an unreachable
database), and wrote none of them (one transaction). A create whose caller goes away still
takes part in its write, as a single create already in the database would.

Runs as a service in the root nursery (`run`); without it (tests that build a `Pipeline` and no
server) every create is written on its own, at once.
"""

from __future__ import annotations

import trio

from chronos_server.core.models import Job
from chronos_server.errors import ChronosError, Stopping
from chronos_server.store.base import Store

MAX_GROUP = 500


class _Pending:
    __slots__ = ("done", "failure", "job", "result")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.done = trio.Event()
        self.result: Job | ChronosError | None = None
        self.failure: Exception | None = None

    def answer(self, result: Job | ChronosError) -> None:
        self.result = result
        self.done.set()

    def fail(self, failure: Exception) -> None:
        self.failure = failure
        self.done.set()


class JobWriter:
    def __init__(self, store: Store, max_group: int = MAX_GROUP) -> None:
        self._store = store
        self._max_group = max_group
        self._queue: list[_Pending] = []
        self._wake = trio.Event()
        self._running = False
        # Statistics: store writes made, jobs they carried, the largest group.
        self.writes = 0
        self.written = 0
        self.largest = 0

    @property
    def waiting(self) -> int:
        """Creates queued for the next write."""
        return len(self._queue)

    async def insert(self, job: Job) -> Job | ChronosError:
        """The job as inserted, or its refusal (`IdempotencyKeyConflict`); raises what its
        write raised (`StoreUnavailable`, ...)."""
        if not self._running:
            [result] = await self._store.insert_jobs([job])
            return result
        pending = _Pending(job)
        self._queue.append(pending)
        self._wake.set()
        await pending.done.wait()
        if pending.failure is not None:
            raise pending.failure
        assert pending.result is not None
        return pending.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            task_status.started()
            while True:
                if not self._queue:
                    self._wake = trio.Event()
                    await self._wake.wait()
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
                await self._write(group)
        finally:
            self._running = False
            queued, self._queue = self._queue, []
            for pending in queued:
                pending.fail(Stopping())

    async def _write(self, group: list[_Pending]) -> None:
        self.writes += 1
        self.written += len(group)
        self.largest = max(self.largest, len(group))
        try:
            results = await self._store.insert_jobs([pending.job for pending in group])
            for pending, result in zip(group, results, strict=True):
                pending.answer(result)
        except Exception as exc:  # the whole write failed: so does every create it carried
            for pending in group:
                pending.fail(exc)
        finally:
            for pending in group:  # cancelled mid-write (the server is stopping)
                if not pending.done.is_set():
                    pending.fail(Stopping())
