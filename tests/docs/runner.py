"""Run one document's examples in order, as a reader pasting them into one terminal would.

Every `bash`/`python` block runs unless its directive skips it (with a reason). Shell state
(variables set by an earlier block, `export K=…`) carries from block to block of a document; the
work directory is shared with the server (`chronos serve` runs there on `chronos.db`, the default
database, so `chronos keys create` without `--database-url` finds it, as it would for a reader).

Placeholders are replaced mechanically before a block runs: the key and secret written as
`chrns_…` and `whsec_…`, the ports 8080 (the server), 9464 (its metrics), 8000 (a receiver) and
8081 (a second server), the PostgreSQL URL `postgresql://chronos@db.internal:5432/chronos` (the
test's database, for `needs: postgres` blocks), `.venv/bin/` (this checkout's virtualenv), and
`<name>` values captured from earlier answers. An ellipsis left over after that is an example a
reader cannot paste, and fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.curl_shim import PLACEHOLDER
from tests.docs.markdown import PYTHON, SHELL, Block

SHIM = Path(__file__).with_name("curl_shim.py")
BLOCK_TIMEOUT = 60.0
UNTIL_TIMEOUT = 30.0


class ExampleFailed(AssertionError):
    pass


@dataclass
class Environment:
    """What the examples of every document share: the server, its directory and credentials."""

    workdir: Path
    base_url: str  # http://127.0.0.1:PORT
    api_key: str
    signing_secret: str
    receiver_port: int
    spare_port: int
    metrics_port: int
    postgres_url: str | None = None

    def substitutions(self) -> list[tuple[str, str]]:
        port = self.base_url.rsplit(":", 1)[1]
        venv_bin = str(Path(sys.executable).parent)
        pairs = [
            ("chrns_…", self.api_key),
            ("whsec_…", self.signing_secret),
            ("localhost:8080", f"127.0.0.1:{port}"),
            ("127.0.0.1:8080", f"127.0.0.1:{port}"),
            ("127.0.0.1:8000", f"127.0.0.1:{self.receiver_port}"),
            ("--port 8000", f"--port {self.receiver_port}"),
            ("localhost:8081", f"127.0.0.1:{self.spare_port}"),
            ("127.0.0.1:8081", f"127.0.0.1:{self.spare_port}"),
            ("--port 8081", f"--port {self.spare_port}"),
            ("localhost:9464", f"127.0.0.1:{self.metrics_port}"),
            ("127.0.0.1:9464", f"127.0.0.1:{self.metrics_port}"),
            (".venv/bin/", f"{venv_bin}/"),
        ]
        if self.postgres_url:
            pairs.append(("postgresql://chronos@db.internal:5432/chronos", self.postgres_url))
        return pairs


@dataclass
class Background:
    block: Block
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class DocumentRun:
    env: Environment
    name: str  # a short name for this document's state files
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    background: dict[str, Background] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = self.env.workdir / f".examples-{self.name}"
        self.state.mkdir(exist_ok=True)
        (self.state / "captures.json").write_text("{}")
        bin_dir = self.state / "bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "curl"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" "$@"\n')
        shim.chmod(0o755)
        path = f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
        self.base_env = base | {
            "PATH": path,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(self.env.workdir),
            "CHRONOS_EXAMPLE_STATE": str(self.state),
            "CHRONOS_EXAMPLE_CURL": _real_curl(),
        }

    # -- running -----------------------------------------------------------------------------

    def run_all(self, blocks: list[Block]) -> None:
        try:
            for block in blocks:
                if block.runnable:
                    started = time.monotonic()
                    self.run(block)
                    if os.environ.get("CHRONOS_EXAMPLE_TIMING"):
                        print(f"{block.where}: {time.monotonic() - started:.2f} s")
            for name in list(self.background):
                started = time.monotonic()
                self.stop(name)
                if os.environ.get("CHRONOS_EXAMPLE_TIMING"):
                    print(f"stop {name}: {time.monotonic() - started:.2f} s")
        finally:
            for bg in self.background.values():
                _kill(bg.proc)

    def run(self, block: Block) -> None:
        d = block.directive
        if d.skip:
            self.skipped.append(f"{block.where}: {d.skip}")
            return
        if "postgres" in d.needs and not self.env.postgres_url:
            self.skipped.append(f"{block.where}: needs PostgreSQL (run by the PostgreSQL pass)")
            return
        if "sqlite" in d.needs and self.env.postgres_url:
            self.skipped.append(f"{block.where}: needs SQLite (run by the SQLite pass)")
            return
        for name in d.stop:
            self.stop(name)
        code = self.substitute(block)
        if d.file is not None:
            (self.env.workdir / d.file).write_text(code)
            if block.lang in PYTHON:
                self._check(block, [sys.executable, "-m", "py_compile", d.file])
            self.ran.append(block.where)
            return
        self._prepare_block(block)
        if block.lang in PYTHON:
            script_file = self.state / f"block-{block.line}.py"
            script_file.write_text(code)
            code = f'python "{script_file}"'
        if d.background is not None:
            self._start_background(block, code)
        else:
            out = self._check(block, ["bash", "-c", self._script(code)])
            self._capture_stdout(block, out)
        self.ran.append(block.where)

    def substitute(self, block: Block) -> str:
        code = block.code
        for literal, value in self.env.substitutions():
            code = code.replace(literal, value)
        captures: dict[str, str] = json.loads((self.state / "captures.json").read_text())
        for placeholder, value in captures.items():
            code = code.replace(placeholder, value)
        if "…" in code:
            line = next(line for line in code.splitlines() if "…" in line)
            raise ExampleFailed(
                f"{block.where}: an ellipsis a reader cannot paste is left in {line.strip()!r}: "
                "write a real value, or a placeholder the tests know (chrns_…, whsec_…, <name> "
                "with a capture directive)"
            )
        own = {c.placeholder for c in block.directive.captures}
        unknown = set(PLACEHOLDER.findall(code)) - own - set(captures)
        for placeholder in sorted(unknown):
            if block.lang in SHELL and placeholder in code:
                raise ExampleFailed(
                    f"{block.where}: placeholder {placeholder} has no value: capture it in an "
                    "earlier block (`<!-- example capture: {placeholder} = curl N data.id -->`)"
                )
        return code

    def stop(self, name: str) -> None:
        bg = self.background.pop(name, None)
        if bg is None:
            raise ExampleFailed(f"no background example named {name!r} is running")
        d = bg.block.directive
        if d.until is not None:
            self._wait_for(bg, d.until)
        bg.proc.send_signal(signal.SIGTERM)
        try:
            status = bg.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill(bg.proc)
            raise ExampleFailed(f"{bg.block.where}: did not stop within 20 s of SIGTERM") from None
        allowed = {d.exit} if d.exit is not None else {0, -signal.SIGTERM}
        if status not in allowed:
            raise ExampleFailed(
                f"{bg.block.where}: exited {status} after SIGTERM, expected {sorted(allowed)}:\n"
                f"{bg.log.read_text(errors='replace')}"
            )

    # -- helpers -----------------------------------------------------------------------------

    def _script(self, code: str, *, exec_: bool = False) -> str:
        env_file = self.state / "env.sh"
        prelude = (
            "set -a\n"
            f'[ -f "{env_file}" ] && source "{env_file}"\n'
            f"trap 'export -p > \"{env_file}\"' EXIT\n"
            "set -euo pipefail\n"
        )
        if exec_:  # the process itself, so a SIGTERM reaches it and its exit status is its own
            return prelude + "exec env " + code.strip()
        return prelude + code

    def _prepare_block(self, block: Block) -> None:
        d = block.directive
        captures = [[c.placeholder, c.curl_call, c.path] for c in d.captures if c.curl_call]
        body = {"calls": 0, "captures": captures, "statuses": sorted(d.statuses)}
        (self.state / "block.json").write_text(json.dumps(body))

    def _check(self, block: Block, cmd: list[str]) -> str:
        done = subprocess.run(
            cmd,
            cwd=self.env.workdir,
            env=self.base_env,
            capture_output=True,
            timeout=BLOCK_TIMEOUT,
        )
        out = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            raise ExampleFailed(
                f"{block.where}: the example exited {done.returncode}\n--- example ---\n"
                f"{block.code}--- stdout ---\n{out}--- stderr ---\n"
                f"{done.stderr.decode(errors='replace')}"
            )
        return out

    def _capture_stdout(self, block: Block, out: str) -> None:
        path = self.state / "captures.json"
        captures: dict[str, str] = json.loads(path.read_text())
        for capture in block.directive.captures:
            if capture.curl_call is None:
                found = re.search(capture.path, out)
                if found is None:
                    raise ExampleFailed(
                        f"{block.where}: {capture.path!r} not found in its output:\n{out}"
                    )
                captures[capture.placeholder] = found.group(1)
            elif capture.placeholder not in captures:
                raise ExampleFailed(
                    f"{block.where}: capture {capture.placeholder} wants curl call "
                    f"{capture.curl_call}, which the block did not make"
                )
        path.write_text(json.dumps(captures))

    def _start_background(self, block: Block, code: str) -> None:
        name = block.directive.background
        assert name is not None
        log = self.state / f"{name}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                ["bash", "-c", self._script(code.replace("\\\n", " "), exec_=True)],
                cwd=self.env.workdir,
                env=self.base_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.background[name] = Background(block, proc, log)
        if block.directive.ready is not None:
            self._wait_for(self.background[name], block.directive.ready)

    def _wait_for(self, bg: Background, regex: str) -> None:
        pattern = re.compile(regex)
        deadline = time.monotonic() + UNTIL_TIMEOUT
        while not pattern.search(bg.log.read_text(errors="replace")):
            if bg.proc.poll() is not None or time.monotonic() > deadline:
                _kill(bg.proc)
                raise ExampleFailed(
                    f"{bg.block.where}: its output never matched {regex!r} "
                    f"(exit {bg.proc.returncode}):\n{bg.log.read_text(errors='replace')}"
                )
            time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _real_curl() -> str:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "curl"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ExampleFailed("curl is not installed; the documentation's examples use it")
