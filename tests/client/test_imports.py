"""A worker host installs the base package only: the SDK, the client and the `chronos` command's
HTTP side must load nothing of the server, the TUI or their dependencies."""

from __future__ import annotations

import subprocess
import sys

# Top-level modules only the `[server]` or `[tui]` extras install, and our own packages.
FORBIDDEN = (
    "chronos_server",
    "chronos_tui",
    "textual",
    "psycopg",
    "psycopg_pool",
    "orjson",
    "cronsim",
    "tzdata",
    "prometheus_client",
    "pythonjsonlogger",
)
# (trio_websocket and its wsproto are base dependencies: the SDK's worker channel uses them.)


def loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\n"
        "import sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_the_sdk_and_the_client_import_nothing_of_the_server_or_the_tui() -> None:
    code = (
        "import chronos_worker\n"
        "from chronos_worker import Chronos, ChronosContext, Worker, Client, AsyncClient\n"
        "import chronos_worker.cli, chronos_worker.models, chronos_worker.client\n"
    )
    assert loaded_after(code) == []


def test_the_commands_of_the_hosted_cli_import_nothing_of_the_server_or_the_tui() -> None:
    code = (
        "from chronos_cli.main import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "try:\n"
        "    main(['jobs', 'list', '--server', 'http://127.0.0.1:9', '--retries', '0'])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert loaded_after(code) == []


def test_the_async_client_does_not_load_trio() -> None:
    """The TUI runs on asyncio: `AsyncClient` must not pull Trio in (httpx picks the loop)."""
    probe = (
        "import sys\n"
        "from chronos_worker import AsyncClient\n"
        "print('trio' in {m.split('.')[0] for m in sys.modules})"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
