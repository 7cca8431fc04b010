"""`chronos serve --workers N` (PostgreSQL only): one supervising process, N server processes.

The supervisor is the process the user started. It applies the migrations and runs the
first-start bootstrap once, so at most one API key is created and printed, then starts N plain
`chronos serve` processes (`python -m chronos_server serve`, a fresh interpreter each: nothing is
forked from a process that runs Trio). Each binds the port with SO_REUSEPORT and runs the whole
pipeline, like the replicas of README "Several replicas"; the kernel spreads new connections
over their listening sockets. The supervisor binds the port too, with SO_REUSEPORT but without
listening: port 0 becomes one real port for all, and no connection is ever queued on it.

Stopping: SIGINT or SIGTERM is forwarded to every child as SIGTERM, and each does its own
graceful stop; another signal forwards another SIGTERM (a child stops at once on its second).
The children run in their own process group, so a terminal's Ctrl-C reaches them once, through
here. A child that exits when nothing asked it to is logged, the others are stopped, and the
supervisor exits 1; it never respawns (a crash loop would otherwise hide). Each child holds the
read end of a pipe whose write end only the supervisor has: should the supervisor die (SIGKILL),
the children see end-of-file and stop gracefully instead of serving on, orphaned.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from chronos_server import runtime
from chronos_server.clock import SystemClock
from chronos_server.settings import Settings
from chronos_server.store.open import open_store

log = logging.getLogger("chronos")

# Internal: set in a child's environment to the descriptor of its end of the supervisor's pipe.
LIFELINE_ENV = "CHRONOS_SUPERVISOR_FD"


@dataclass
class Children:
    procs: list[trio.Process] = field(default_factory=list)
    stopping: bool = False
    failed: bool = False

    def stop(self) -> None:
        """SIGTERM to every child still running (a graceful stop; at once on a second)."""
        self.stopping = True
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)


async def supervise(settings: Settings, log_level: str) -> int:
    """Run `settings.workers` server processes until they have all exited; the exit code."""
    # The port first: a port that is taken fails before the first-start key is made.
    with await runtime.bind_socket(settings.host, settings.port, reuse_port=True) as reserved:
        async with open_store(settings.database_url) as store:  # migrations, applied once
            shown = await runtime.bootstrap(store, settings, SystemClock())
        if shown:
            print(runtime.shown_key_line(shown), flush=True)
        url = runtime.socket_url(reserved)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with start_children(settings, reserved.getsockname()[1], log_level) as children:
                log.info("Chronos: %d server processes on %s", len(children.procs), url)
                await watch(children, signals)
    return 1 if children.failed else 0


def child_environment(settings: Settings, port: int, lifeline: int) -> dict[str, str]:
    # Through the environment, not argv: a database URL may hold a password `ps` would show.
    return dict(
        os.environ,
        CHRONOS_HOST=settings.host,
        CHRONOS_PORT=str(port),
        CHRONOS_DATABASE_URL=settings.database_url,
        CHRONOS_WORKERS="1",
        CHRONOS_LOG_FORMAT=settings.log_format,
        CHRONOS_ACCESS_LOG="1" if settings.access_log else "0",
        **{LIFELINE_ENV: str(lifeline)},
    )


def metrics_port_env(settings: Settings, number: int) -> dict[str, str]:
    """`--metrics-port P` with N processes: each has a registry of its own, so each gets its
    own listener, process `number` (from 0) on P + number (port 0: each a free port, logged)."""
    if settings.metrics_port is None:
        return {"CHRONOS_METRICS_PORT": ""}
    port = settings.metrics_port + number if settings.metrics_port else 0
    return {"CHRONOS_METRICS_PORT": str(port)}


@asynccontextmanager
async def start_children(settings: Settings, port: int, log_level: str) -> AsyncIterator[Children]:
    """`settings.workers` children started; on the way out (normally once they have all exited)
    the supervisor's end of their lifeline is closed."""
    read_end, write_end = os.pipe()  # both non-inheritable; `pass_fds` hands the read end on
    children = Children()
    try:
        env = child_environment(settings, port, read_end)
        cmd = [sys.executable, "-m", "chronos_server", "serve", "--log-level", log_level]
        for number in range(settings.workers):
            proc = await trio.lowlevel.open_process(
                cmd,
                env=env | metrics_port_env(settings, number),
                pass_fds=(read_end,),
                process_group=0,
            )
            children.procs.append(proc)
        os.close(read_end)
        read_end = -1
        yield children
    except BaseException:
        children.stop()
        raise
    finally:
        if read_end >= 0:
            os.close(read_end)
        os.close(write_end)


async def watch(children: Children, signals: AsyncIterator[int]) -> None:
    """Until every child has exited: forward signals, and stop all when one exits unasked."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward_signals, children, signals)
        async with trio.open_nursery() as waiting:
            for number, proc in enumerate(children.procs, 1):
                waiting.start_soon(wait_child, children, number, proc)
        nursery.cancel_scope.cancel()


async def forward_signals(children: Children, signals: AsyncIterator[int]) -> None:
    async for _ in signals:
        if children.stopping:
            log.warning("another signal: every server process stops at once")
        else:
            log.info("stopping %d server processes", len(children.procs))
        children.stop()


async def wait_child(children: Children, number: int, proc: trio.Process) -> None:
    code = await proc.wait()
    if not children.stopping:
        log.error(
            "server process %d (pid %d) exited unexpectedly (%s); stopping the others",
            number,
            proc.pid,
            describe_exit(code),
        )
        children.failed = True
        children.stop()
    elif code not in (0, -signal.SIGTERM):  # -SIGTERM: stopped before its handler was set
        log.error("server process %d (pid %d) failed (%s)", number, proc.pid, describe_exit(code))
        children.failed = True


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


async def stop_when_supervisor_exits(lifeline: int, stop: Callable[[], None]) -> None:
    """In a child: `stop()` once the supervisor's end of the pipe is closed (it never writes)."""
    async with trio.lowlevel.FdStream(lifeline) as stream:
        while await stream.receive_some():
            pass
    log.warning("the supervising process is gone; stopping")
    stop()
