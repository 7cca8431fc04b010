"""`sync_client.py` is generated from `async_client.py`; the two must not drift apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chronos_worker import AsyncClient, Client

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_sync_client"


def test_sync_client_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_both_clients_have_the_same_endpoints() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")} - {"aclose", "close"}

    assert public(AsyncClient) == public(Client)
    assert {"create_job", "replay_job", "replay_jobs", "iter_jobs", "set_handler_limits"} <= (
        public(Client)
    )
