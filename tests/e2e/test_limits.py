"""Bounded resources (issue 10, defect 3): with the common open-files limit, more idle TCP
connections than the server can hold used to take the API and `/healthz` down. The server now
raises its soft limit to the hard one, caps the connections it serves, and lets a new client
take the place of an idle one."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx
import trio

from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start

OPEN_FILES = 300  # soft = hard, as a default systemd unit or container would give


def low_open_files_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


async def test_more_idle_connections_than_descriptors_leave_the_api_up(tmp_path: Path) -> None:
    port = free_port()
    env = {"CHRONOS_PUSH_CONCURRENCY": "16"}
    proc = await start(
        f"sqlite:///{tmp_path / 'c.db'}", port, env=env, preexec_fn=low_open_files_limit
    )
    idle: list[trio.SocketStream] = []
    try:
        for _ in range(OPEN_FILES + 100):  # no key, no byte: sockets a scanner would leave open
            idle.append(await trio.open_tcp_stream("127.0.0.1", port))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5
        ) as client:
            with trio.fail_after(20):  # a stall guard: without the cap this never answers
                for _ in range(3):
                    assert (await client.get("/healthz")).status_code == 200
                    assert (await client.get("/v1/jobs")).status_code == 200
            for stream in idle:
                await stream.aclose()
            idle.clear()
            with trio.fail_after(20):
                assert (await client.get("/v1/jobs")).status_code == 200
    finally:
        for stream in idle:
            await stream.aclose()
        proc.kill()
        await proc.wait()
