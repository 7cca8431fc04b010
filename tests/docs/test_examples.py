"""Every shell and Python example of the README and docs/ runs against a real `chronos serve`.

One server for the whole module (a subprocess on SQLite, the default `chronos.db` of a fresh work
directory, as a reader's first run), then the same documents' PostgreSQL examples against a second
one. How a block is run, captured from or skipped is said next to it in the Markdown
(tests/docs/markdown.py); how placeholders are filled in, in tests/docs/runner.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import API_KEY, SIGNING_SECRET
from tests.docs.markdown import REPO, blocks, documents
from tests.docs.runner import DocumentRun, Environment, ExampleFailed

DOCS = documents()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    workdir: Path, database_url: str | None, metrics_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")} | {
        "CHRONOS_BOOTSTRAP_API_KEY": API_KEY,
        "CHRONOS_BOOTSTRAP_SIGNING_SECRET": SIGNING_SECRET,
        "CHRONOS_RATE_LIMIT": "1000/10s",
        # The README's receiver runs on 127.0.0.1 over plain HTTP.
        "CHRONOS_ALLOW_HTTP_TARGETS": "1",
        "CHRONOS_ALLOW_PRIVATE_TARGETS": "1",
        "CHRONOS_LOG_LEVEL": "WARNING",
        "CHRONOS_SHUTDOWN_GRACE_SECONDS": "2",
    }
    cmd = [sys.executable, "-m", "chronos_server", "serve", "--port", str(port)]
    cmd += ["--metrics-port", str(metrics_port)]
    if database_url is not None:
        cmd += ["--database-url", database_url]
    log = (workdir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (workdir / "server.log").read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("chronos serve did not become ready within 30 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    workdir = tmp_path_factory.mktemp("examples-sqlite")
    metrics = free_port()
    proc, url = start_server(workdir, None, metrics)  # the default database: ./chronos.db
    try:
        yield Environment(workdir, url, API_KEY, SIGNING_SECRET, free_port(), free_port(), metrics)
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def postgres_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    database_url = pg.new_schema_url()
    workdir = tmp_path_factory.mktemp("examples-postgres")
    metrics = free_port()
    proc, url = start_server(workdir, database_url, metrics)
    try:
        yield Environment(
            workdir, url, API_KEY, SIGNING_SECRET, free_port(), free_port(), metrics, database_url
        )
    finally:
        stop_server(proc)


def _name(doc: Path) -> str:
    return str(doc.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_examples_on_sqlite(doc: Path, sqlite_env: Environment) -> None:
    run = DocumentRun(sqlite_env, doc.stem)
    run.run_all(blocks(doc))
    assert run.ran or run.skipped or not any(b.runnable for b in blocks(doc))


# PostgreSQL where it is cheap: the API reference (curl only) and the operations page, whose
# PostgreSQL examples (`needs: postgres`) run only here.
PG_DOCS = [REPO / "docs" / "api.md", REPO / "docs" / "operations.md"]


@pytest.mark.parametrize("doc", PG_DOCS, ids=_name)
def test_examples_on_postgres(doc: Path, postgres_env: Environment) -> None:
    run = DocumentRun(postgres_env, doc.stem)
    run.run_all(blocks(doc))
    assert run.ran


def test_every_runnable_block_runs_or_says_why_not() -> None:
    """A shell or Python block without a directive runs; one that is skipped carries its reason
    (the directive parser refuses `skip:` without one). Nothing hides in another language tag."""
    for doc in DOCS:
        for block in blocks(doc):
            if block.lang in {"console", "shell-session", "sh-session", "zsh", "py3"}:
                raise AssertionError(
                    f"{block.where}: tag the block `bash` or `python` so the tests run it"
                )
            if block.directive.skip is not None:
                assert len(block.directive.skip) > 10, f"{block.where}: say why it is skipped"


BROKEN = {
    "ellipsis": """```bash
curl -s -H "Authorization: Bearer $K" -X POST localhost:8080/v1/jobs -d '{"name":"x",
  "delivery":{"type":"push","http":{"url":"https://app.example.com/h","method":"POST",
  "headers":{"X-App-Token":"…"}}}}'
```
""",
    "refused": """```bash
curl -s -H "Authorization: Bearer $K" -X POST localhost:8080/v1/jobs -d '{"name":"x"}'
```
""",
    "unset variable": """```bash
curl -s -H "Authorization: Bearer $NOT_SET" localhost:8080/v1/jobs
```
""",
    "python error": """```python
import chronos_worker.no_such_module
```
""",
    "unknown placeholder": """```bash
curl -s -H "Authorization: Bearer $K" "localhost:8080/v1/jobs/<job id>"
```
""",
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_example_that_fails_when_pasted_fails(
    case: str, sqlite_env: Environment, tmp_path: Path
) -> None:
    doc = tmp_path / "broken.md"
    doc.write_text("```bash\nexport K=chrns_…\n```\n\n" + BROKEN[case])
    run = DocumentRun(sqlite_env, f"broken-{case.replace(' ', '-')}")
    with pytest.raises(ExampleFailed):
        run.run_all(blocks(doc))
