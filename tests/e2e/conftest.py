"""End-to-end tests run on both stores: `database_url` is SQLite (a tmp file) or PostgreSQL (a
fresh schema of the session's own database, tests/pg.py), and `server` is built on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chronos_server.pipeline.services import LoopSettings
from tests import pg
from tests.conftest import RunningServer, make_settings, open_running_server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Sync on purpose: an unreachable PostgreSQL skips (or fails under CI) with its reason.
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chronos.db'}"
    return pg.new_schema_url()


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, database_url=database_url)
    async with open_running_server(settings, LoopSettings(lease_grace_ms=0)) as running:
        yield running
