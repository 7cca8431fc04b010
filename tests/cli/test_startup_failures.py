"""`chronos serve` start-up failures: one `chronos: ...` line on stderr and an exit code, never a
traceback; a port that is taken does not consume the first-start API key.

Real processes (`python -m chronos_server serve`): what an operator sees is the point.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def chronos(
    *argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "chronos_server", *argv],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def the_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    mine = [line for line in result.stderr.splitlines() if line.startswith("chronos: ")]
    assert len(mine) == 1, result.stderr
    return mine[0]


def test_a_taken_port_is_one_line_and_exit_1_and_keeps_the_first_key(
    tmp_path: Path, taken_port: int
) -> None:
    result = chronos("serve", "--port", str(taken_port), "--database-url", "sqlite:///c.db",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken_port}: the address is already in use" in (
        the_line(result)
    )
    assert "API key" not in result.stdout
    assert not (tmp_path / "c.db").exists()  # nothing opened, nothing bootstrapped


def test_an_unreachable_postgresql_is_exit_7(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{free}/chronos"
    result = chronos("serve", "--port", "0", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 7
    assert the_line(result).startswith("chronos: the database is unreachable: PostgreSQL")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--database-url", "sqlite:///missing/dir/c.db"], {},
         "chronos: the directory of the database file 'missing/dir/c.db' does not exist"),
        (["--database-url", "mysql://localhost/c"], {},
         "chronos: unsupported database URL scheme: 'mysql://localhost/c'"),
        (["--database-url", "postgresql://postgres@127.0.0.1/c?nonsense=1"], {},
         "chronos: bad PostgreSQL database URL"),
        ([], {"CHRONOS_RATE_LIMIT": "lots"},
         "chronos: CHRONOS_RATE_LIMIT must look like 100/10s or off, got 'lots'"),
        (["--host", "no-such-host.invalid"], {},
         "chronos: cannot resolve the bind address 'no-such-host.invalid'"),
    ],
)  # fmt: skip
def test_a_value_to_fix_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], env: dict[str, str], expected: str
) -> None:
    result = chronos("serve", "--port", "0", *argv, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert the_line(result).startswith(expected)


def test_a_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    result = chronos("serve", "--log-level", "LOUD", cwd=tmp_path)
    assert result.returncode == 2
    assert "'LOUD' is not one of" in result.stderr and "Traceback" not in result.stderr


def test_a_taken_metrics_port_is_one_line_naming_the_flag(tmp_path: Path, taken_port: int) -> None:
    result = chronos("serve", "--port", "0", "--metrics-port", str(taken_port),
                     "--database-url", "sqlite:///c.db", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    line = the_line(result)
    assert f"cannot listen for metrics on 127.0.0.1:{taken_port}" in line
    assert "--metrics-port" in line
    assert not (tmp_path / "c.db").exists()


def test_a_bad_log_format_is_a_usage_error(tmp_path: Path) -> None:
    result = chronos("serve", "--log-format", "xml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "xml" in result.stderr
