"""`chronos-worker`: run the handlers of a Python object against a Chronos server.

    chronos-worker [--server URL] [--api-key KEY] [--concurrency N] [--prefetch N]
                   [--poll-wait S] [--protocol auto|stream|poll] [--log-level LEVEL] module:attr

How `module:attr` is loaded and configured:

1. The current directory is put first on `sys.path`, so `module` may be a file in it.
2. `--server` / `--api-key` (falling back to `CHRONOS_BASE_URL` / `CHRONOS_API_KEY`) are
   exported to those environment variables BEFORE the import, so a module that builds
   `Chronos()` without arguments picks them up (and can be imported at all).
3. `attr` (a dotted path is allowed) must be a `Chronos` or a `Worker`, or a zero-argument
   callable returning one.
4. The object is not run as is: `chronos_worker.chronos.reconfigure()` builds a new `Chronos`
   from its options with the command-line values on top (`--server`, `--api-key`,
   `--concurrency`, `--prefetch`, `--poll-wait`, `--protocol`; only those given; a
   `--prefetch` below 0 is refused as invalid configuration, exit 2), keeps its other options
   (retry delay, logger, HTTP client) and copies its handlers. The loaded object is left untouched.

Signals: the first SIGINT/SIGTERM calls `worker.stop()` (no new claims, or over the worker
channel a `drain`; running handlers finish and are reported) and the command exits 0; a
second one exits 1 at once, leaving any running execution to be retried after its lease
expires (spec §11.5).

Exit codes (G-44): 0 stopped cleanly; 1 second signal or unexpected error; 2 bad arguments,
invalid configuration or a target that cannot be loaded; 3 API key refused (401/403).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterable, Callable, Sequence
from typing import NoReturn

import trio

from .chronos import Chronos, reconfigure
from .errors import ChronosAuthError, ChronosConfigError
from .worker import Worker

EXIT_OK = 0
EXIT_ABORTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3

log = logging.getLogger("chronos_worker.cli")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


def run_cli(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on bad arguments
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "DEBUG":
        # httpx logs every request at INFO: one line per long-poll drowns the worker's own log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        chronos = build_chronos(
            args.target,
            server=args.server or os.environ.get("CHRONOS_BASE_URL") or None,
            api_key=args.api_key or os.environ.get("CHRONOS_API_KEY") or None,
            concurrency=args.concurrency,
            prefetch=args.prefetch,
            poll_wait=args.poll_wait,
            protocol=args.protocol,
        )
    except ChronosConfigError as exc:
        print(f"chronos-worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Everything loaded so far (modules, the handlers) lives as long as the process: keep the
    # cyclic garbage collector from walking it again and again while jobs run.
    gc.collect()
    gc.freeze()
    return trio.run(serve, chronos.worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chronos-worker", description="Run Chronos pull-job handlers from module:attr."
    )
    parser.add_argument("target", metavar="module:attr", help="a Chronos or Worker object")
    parser.add_argument("--server", help="server base URL (env CHRONOS_BASE_URL)")
    parser.add_argument("--api-key", help="API key, chrns_... (env CHRONOS_API_KEY)")
    parser.add_argument("--concurrency", type=int, help="jobs run at once (default: 1)")
    parser.add_argument(
        "--prefetch",
        type=int,
        help="jobs claimed beyond --concurrency, waiting for a free slot, while handlers are fast"
        " (env CHRONOS_WORKER_PREFETCH; default: 8 x concurrency, at most 100 - concurrency;"
        " 0: off)",
    )
    parser.add_argument("--poll-wait", type=int, help="long-poll seconds, 0-20 (default: 20)")
    parser.add_argument(
        "--protocol",
        choices=["auto", "stream", "poll"],
        help="auto: the worker channel (WebSocket) when the server offers it, else the"
        " long-poll; stream / poll force one (env CHRONOS_WORKER_PROTOCOL; default: auto)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def build_chronos(
    target: str,
    *,
    server: str | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    poll_wait: int | None = None,
    protocol: str | None = None,
    prefetch: int | None = None,
) -> Chronos:
    """Load `target` and return a new `Chronos` with the command-line overrides applied."""
    if server is not None:
        os.environ["CHRONOS_BASE_URL"] = server
    if api_key is not None:
        os.environ["CHRONOS_API_KEY"] = api_key
    return reconfigure(
        load_target(target),
        base_url=server,
        api_key=api_key,
        concurrency=concurrency,
        poll_wait_time_seconds=poll_wait,
        protocol=protocol,
        prefetch=prefetch,
    )


def load_target(spec: str) -> Chronos | Worker:
    """Resolve `module:attr` to a `Chronos` or `Worker`; `ChronosConfigError` if impossible."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ChronosConfigError(f"Target must look like module:attr, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing target module is a usage error; a missing import inside it is a bug.
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise
        raise ChronosConfigError(f"Cannot import module {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ChronosConfigError(f"{module_name!r} has no attribute {attr_path!r}") from exc
    if not isinstance(obj, Chronos | Worker) and callable(obj):
        obj = obj()
    if not isinstance(obj, Chronos | Worker):
        raise ChronosConfigError(
            f"{spec} is a {type(obj).__name__}, not a Chronos or Worker"
            " (or a zero-argument callable returning one)"
        )
    return obj


async def serve(worker: Worker) -> int:
    """Run `worker` until signalled; returns the exit code."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        return await run_until_signalled(worker, signals)


async def run_until_signalled(
    worker: Worker,
    signals: AsyncIterable[int],
    hard_exit: Callable[[int], object] = os._exit,
) -> int:
    """`worker.start()`, with the first signal stopping it and the second calling `hard_exit`."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, worker, signals, nursery, hard_exit)
        try:
            await worker.start()
        except ChronosAuthError as exc:
            print(f"chronos-worker: API key refused by the server: {exc}", file=sys.stderr)
            return EXIT_AUTH
        finally:
            nursery.cancel_scope.cancel()
    return EXIT_OK


async def _watch_signals(
    worker: Worker,
    signals: AsyncIterable[int],
    nursery: trio.Nursery,
    hard_exit: Callable[[int], object],
) -> None:
    received = 0
    async for signum in signals:
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            log.info("%s received: finishing running jobs (send again to exit at once)", name)
            nursery.start_soon(worker.stop)  # a task, so a second signal is still heard
        else:
            print(f"chronos-worker: second {name}; exiting now", file=sys.stderr, flush=True)
            sys.stdout.flush()
            hard_exit(EXIT_ABORTED)
            return
