"""`Metrics`: the server's Prometheus metrics (prometheus-client types in a registry of its own).

The pipeline, the routes and the push sender call one method per event (`job_created`,
`execution_finished`, ...). With metrics off (no `--metrics-port`) every method returns at
once, so the hot path pays an attribute read. With them on, an event costs a dict lookup of
the labelled child (cached here: `labels()` takes a lock and builds a tuple each time) and
prometheus-client's own lock-protected increment or observation, a few microseconds; the store
is wrapped by `TimedStore` (one extra coroutine frame per call). `bench/metrics_overhead.py`
measures the difference.

Gauges are read at scrape time, never per request: parked claims, push requests in flight and
open worker channels from in-process counters, and jobs per state and handler from ONE
indexed query (`Store.queue_counts`) run at most once per `QUEUE_REFRESH_SECONDS` however often
Prometheus scrapes (`refresh_queue`, called by the listener before it renders).

    chronos_jobs_created_total{source}              api, batch, schedule, manual, replay
    chronos_executions_total{outcome}               completed, failed, timeout
    chronos_push_responses_total{status_class}      2xx 3xx 4xx 5xx, error (no response), timeout
    chronos_claims_total{result}                    job (at least one handed over), empty
    chronos_jobs_claimed_total                      jobs handed to workers
    chronos_http_requests_total{method,route,status}
    chronos_job_lateness_seconds{delivery}          due instant (run_at) -> execution start
    chronos_execution_duration_seconds{delivery}    start -> end of a finished execution
    chronos_push_request_duration_seconds           one push request, sent to answered
    chronos_claim_wait_seconds                      a claim request, received to answered
    chronos_http_request_duration_seconds{method,route}
    chronos_store_call_duration_seconds{operation}  one store call (a transaction or a statement)
    chronos_jobs{state,handler}                     open jobs (pending ... retrying), gauge
    chronos_parked_claims, chronos_push_in_flight, chronos_worker_channels   gauges
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.errors import ChronosError
from chronos_server.store.base import Store

log = logging.getLogger("chronos.metrics")
QUEUE_REFRESH_SECONDS = 5.0
OPEN_STATES = [
    s.value
    for s in JobStatus
    if s not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
]
# Seconds: from a millisecond (a claim served at once) to an hour (a job's longest timeout).
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2)


@dataclass
class Gauges:
    """Where the scrape-time gauges come from (set by the runtime once the objects exist)."""

    parked_claims: Callable[[], int] = lambda: 0
    push_in_flight: Callable[[], int] = lambda: 0
    worker_channels: Callable[[], int] = lambda: 0
    queue: dict[tuple[str, str], int] = field(default_factory=dict)  # (state, handler) -> n
    queue_read_at: float | None = None  # trio time of the last read


class _GaugeCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._g = gauges

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily(
            "chronos_jobs",
            f"Open jobs per state and handler (read at most every {QUEUE_REFRESH_SECONDS:g} s)",
            labels=["state", "handler"],
        )
        for (state, handler), n in sorted(self._g.queue.items()):
            jobs.add_metric([state, handler], n)
        yield jobs
        for name, text, read in (
            ("chronos_parked_claims", "Claim long-polls parked here", self._g.parked_claims),
            ("chronos_push_in_flight", "Push requests in flight", self._g.push_in_flight),
            ("chronos_worker_channels", "Worker channels open here", self._g.worker_channels),
        ):
            yield GaugeMetricFamily(name, text, value=read())


class Metrics:
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.gauges = Gauges()
        r = self.registry
        self._created = Counter("chronos_jobs_created", "Jobs created", ["source"], registry=r)
        self._executions = Counter(
            "chronos_executions", "Executions finished, by outcome", ["outcome"], registry=r
        )
        self._push = Counter(
            "chronos_push_responses", "Push attempts by answer", ["status_class"], registry=r
        )
        self._claims = Counter("chronos_claims", "Claim requests answered", ["result"], registry=r)
        self._claimed = Counter("chronos_jobs_claimed", "Jobs handed to workers", registry=r)
        self._requests = Counter(
            "chronos_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self._lateness = Histogram(
            "chronos_job_lateness_seconds",
            "Due instant (run_at) to execution start",
            ["delivery"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._duration = Histogram(
            "chronos_execution_duration_seconds",
            "Execution start to end",
            ["delivery"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._push_duration = Histogram(
            "chronos_push_request_duration_seconds",
            "One push request, sent to answered (or failed)",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._claim_wait = Histogram(
            "chronos_claim_wait_seconds",
            "A claim, received to answered (long-polls included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._http_duration = Histogram(
            "chronos_http_request_duration_seconds",
            "HTTP request handling (long-polls included)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._store = Histogram(
            "chronos_store_call_duration_seconds",
            "One store call (a transaction or one statement), queueing for a connection included",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        r.register(_GaugeCollector(self.gauges))
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # --- events ---------------------------------------------------------------------------

    def job_created(self, source: str, n: int = 1) -> None:
        if self.enabled and n:
            self._child(self._created, source).inc(n)

    def execution_finished(
        self, status: ExecutionStatus, delivery: str | None = None, duration_ms: int | None = None
    ) -> None:
        if not self.enabled:
            return
        self._child(self._executions, status.value).inc()
        if delivery is not None and duration_ms is not None:
            self._child(self._duration, delivery).observe(max(0, duration_ms) / 1000)

    def executions_timed_out(self, n: int) -> None:
        if self.enabled and n:
            self._child(self._executions, ExecutionStatus.TIMEOUT.value).inc(n)

    def started(self, delivery: str, lateness_ms: int) -> None:
        if self.enabled:
            self._child(self._lateness, delivery).observe(max(0, lateness_ms) / 1000)

    def push_answered(
        self, http_status: int | None, status: ExecutionStatus, seconds: float
    ) -> None:
        if not self.enabled:
            return
        if http_status is not None:
            kind = f"{http_status // 100}xx"
        else:
            kind = "timeout" if status is ExecutionStatus.TIMEOUT else "error"
        self._child(self._push, kind).inc()
        self._push_duration.observe(seconds)

    def claim_answered(self, jobs: int, waited_seconds: float) -> None:
        if not self.enabled:
            return
        self._child(self._claims, "job" if jobs else "empty").inc()
        if jobs:
            self._claimed.inc(jobs)
        self._claim_wait.observe(waited_seconds)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if not self.enabled:
            return
        self._child(self._requests, method, route, str(status)).inc()
        self._child(self._http_duration, method, route).observe(seconds)

    def store_call(self, operation: str, seconds: float) -> None:
        self._child(self._store, operation).observe(seconds)

    # --- scraping -------------------------------------------------------------------------

    async def refresh_queue(self, store: Store) -> None:
        """Read the open jobs per state and handler, unless read within the refresh interval."""
        read_at = self.gauges.queue_read_at
        now = trio.current_time()
        if read_at is not None and now - read_at < QUEUE_REFRESH_SECONDS:
            return
        self.gauges.queue_read_at = now
        try:
            counts = await store.queue_counts()
        except ChronosError as exc:  # the store is down: keep the last values
            log.debug("metrics: open jobs not read (%s)", exc)
            return
        self.gauges.queue = {
            (status.value, handler or ""): n for (handler, status), n in counts.items()
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedStore:
    """A store whose every call is observed in `chronos_store_call_duration_seconds`, labelled
    with the method's name; attributes that are not coroutine methods pass through."""

    _UNTIMED = frozenset({"run_listener", "run_probe", "run_checkpoints", "close"})

    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or name in self._UNTIMED or not _is_coroutine_function(attr):
            return attr
        observe = self._metrics.store_call
        clock = time.perf_counter

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await attr(*args, **kwargs)
            finally:
                observe(name, clock() - started)

        setattr(self, name, timed)  # built once per method
        return timed


def timed_store(store: Store, metrics: Metrics) -> Store:
    return cast(Store, TimedStore(store, metrics))


def _is_coroutine_function(attr: object) -> bool:
    return inspect.iscoroutinefunction(attr)


def scrape_lines(text: bytes) -> Iterator[str]:
    """The sample lines of an exposition (tests and tools)."""
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            yield line
