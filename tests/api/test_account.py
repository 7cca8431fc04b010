"""`GET /v1/account` (extension): the caller's account and whether a signing-secret rotation is
in progress, by the server's clock; never a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from chronos_server.api.timefmt import iso
from chronos_server.runtime import ServerHandle, serve
from tests.api.helpers import fails, ok
from tests.conftest import API_KEY, SIGNING_SECRET, make_settings

T0 = 1_800_000_000_000
HOUR = 3_600_000
NEW = "whsec_" + "bmV3LXNpZ25pbmctc2VjcmV0LW5ldy1zaWduaW5nLTEyMzQ="


class SetClock:
    """The server's wall clock, moved by the test (the loops see it too; nothing here is due)."""

    def __init__(self) -> None:
        self.now = T0

    def now_ms(self) -> int:
        return self.now

    def exact_ms(self) -> float:
        return float(self.now)


@dataclass
class Rig:
    handle: ServerHandle
    client: httpx.AsyncClient
    clock: SetClock

    async def rotate(self, previous_until: int | None) -> None:
        store = self.handle.services.pipeline.store
        account, _ = await store.ensure_account("default", self.clock.now)
        await store.rotate_signing_secret(account.id, NEW, previous_until=previous_until)

    async def account(self) -> dict[str, object]:
        response = await self.client.get("/v1/account")
        assert "whsec_" not in response.text
        data: dict[str, object] = ok(response)
        return data


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = SetClock()
    async with trio.open_nursery() as nursery:

        async def run(*, task_status: trio.TaskStatus[ServerHandle]) -> None:
            await serve(make_settings(tmp_path), clock=clock, task_status=task_status)

        handle: ServerHandle = await nursery.start(run)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers, timeout=30) as client:
            yield Rig(handle, client, clock)
        handle.stop()


async def test_account_without_a_rotation(rig: Rig) -> None:
    data = await rig.account()
    assert data["name"] == "default" and data["timezone"] == "UTC"
    assert data["created_at"] == iso(T0)
    assert data["signing_secret"] == {"rotating": False, "previous_sent_until": None}


async def test_rotation_is_shown_until_its_end_by_the_servers_clock(rig: Rig) -> None:
    await rig.rotate(previous_until=T0 + HOUR)
    rotating = {"rotating": True, "previous_sent_until": "2027-01-15T09:00:00.000Z"}
    assert (await rig.account())["signing_secret"] == rotating
    rig.clock.now = T0 + HOUR - 1
    assert (await rig.account())["signing_secret"] == rotating
    rig.clock.now = T0 + HOUR
    over = {"rotating": False, "previous_sent_until": None}
    assert (await rig.account())["signing_secret"] == over
    await rig.rotate(previous_until=None)
    assert (await rig.account())["signing_secret"] == over


async def test_account_needs_a_key_and_takes_no_query(rig: Rig) -> None:
    async with httpx.AsyncClient(base_url=rig.handle.url) as anonymous:
        fails(await anonymous.get("/v1/account"), 401, "unauthorized")
    fails(await rig.client.get("/v1/account", params={"x": "1"}), 422, "validation_error")
    assert SIGNING_SECRET not in (await rig.client.get("/v1/account")).text
