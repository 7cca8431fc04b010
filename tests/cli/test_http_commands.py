"""`chronos schedules|jobs|executions ...` through the `chronos` entry point (click's CliRunner)
against a real server: tables, `--json` (the API's `data` unchanged), and each exit code of G-44.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chronos_cli.main import cli
from chronos_server.settings import RateLimit
from tests.tui.server import ThreadServer, thread_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with thread_server(tmp_path_factory.mktemp("cli-server")) as running:
        yield running


def chronos(server: ThreadServer | None, *argv: str, key: str | None = None) -> Result:
    env = {"CHRONOS_RETRIES": "0"}
    if server is not None:
        env |= {"CHRONOS_BASE_URL": server.url, "CHRONOS_API_KEY": key or server.api_key}
    return CliRunner().invoke(cli, list(argv), env=env)


def api_data(server: ThreadServer, path: str, **params: str) -> Any:
    with server.client() as http:
        return http.get(path, params=params).json()["data"]


def failed_job(server: ThreadServer, handler: str) -> str:
    with server.client() as http:
        job = http.post("/v1/jobs", json={"name": "x", "handler": handler, "max_retries": 0})
        claim = {"handlers": [handler], "wait_time_seconds": 5}
        claimed = http.post("/v1/worker/jobs/claim", json=claim).json()["data"]
        report = {"status": "failed", "error": {"message": "disk full"}}
        http.post(f"/v1/worker/executions/{claimed['execution_id']}/result", json=report)
        job_id: str = job.json()["data"]["id"]
        return job_id


def test_jobs_create_list_get_as_tables_and_json(server: ThreadServer) -> None:
    made = chronos(server, "jobs", "create", "--name", "hello", "--handler", "cli-a",
                   "--payload", '{"n": 1}', "--delay", "10m", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    job = json.loads(made.stdout)
    assert job == api_data(server, f"/v1/jobs/{job['id']}")

    listed = chronos(server, "jobs", "list", "--handler", "cli-a")
    assert listed.exit_code == 0
    header, line = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "HANDLER", "STATUS", "ATTEMPTS", "CREATED", "(UTC)",
                              "LAST", "ERROR"]  # fmt: skip
    assert line.split()[:5] == [job["id"], "hello", "cli-a", "pending", "0"]

    as_json = chronos(server, "jobs", "list", "--handler", "cli-a", "--json")
    assert json.loads(as_json.stdout) == api_data(server, "/v1/jobs", handler="cli-a")

    shown = chronos(server, "jobs", "get", job["id"])
    assert (
        f"id             {job['id']}" in shown.stdout and "status         pending" in shown.stdout
    )


def test_failed_jobs_and_their_executions(server: ThreadServer) -> None:
    job_id = failed_job(server, "cli-b")
    listed = chronos(server, "jobs", "list", "--status", "failed", "--handler", "cli-b",
                     "--since", "1h", "--json")  # fmt: skip
    assert [j["id"] for j in json.loads(listed.stdout)] == [job_id]
    runs = chronos(server, "executions", "list", "--job", job_id)
    assert runs.exit_code == 0 and "disk full" in runs.stdout
    [execution] = api_data(server, "/v1/executions", job_id=job_id)
    got = chronos(server, "executions", "get", execution["id"], "--json")
    assert json.loads(got.stdout) == execution


def test_paging_all(server: ThreadServer) -> None:
    for i in range(5):
        chronos(server, "jobs", "create", "--name", f"p{i}", "--handler", "cli-page",
                "--delay", "1h")  # fmt: skip
    one = chronos(server, "jobs", "list", "--handler", "cli-page", "--size", "2", "--json")
    assert len(json.loads(one.stdout)) == 2
    every = chronos(server, "jobs", "list", "--handler", "cli-page", "--size", "2", "--all",
                    "--json")  # fmt: skip
    assert len({j["id"] for j in json.loads(every.stdout)}) == 5


def test_schedules_lifecycle(server: ThreadServer) -> None:
    made = chronos(server, "schedules", "create", "--name", "tick", "--handler", "cli-s",
                   "--every", "1h", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    sid = json.loads(made.stdout)["id"]
    listed = chronos(server, "schedules", "list", "--handler", "cli-s")
    assert sid in listed.stdout and "1 hour(s)" in listed.stdout
    assert chronos(server, "schedules", "update", sid, "--name", "tock").exit_code == 0
    policies = chronos(server, "schedules", "update", sid, "--catch-up", "all",
                       "--catch-up-limit", "3", "--overlap", "skip", "--json")  # fmt: skip
    assert policies.exit_code == 0, policies.output
    changed = json.loads(policies.stdout)
    assert (changed["catch_up"], changed["catch_up_limit"], changed["overlap"]) == (
        "all",
        3,
        "skip",
    )
    assert "paused" in chronos(server, "schedules", "pause", sid).stdout
    assert chronos(server, "schedules", "resume", sid).exit_code == 0
    ran = chronos(server, "schedules", "run", sid, "--json")
    assert json.loads(ran.stdout)["schedule_id"] == sid
    archived = chronos(server, "schedules", "archive", sid, "--json")
    assert json.loads(archived.stdout)["status"] == "archived"
    # 5: conflict (an archived schedule cannot change)
    again = chronos(server, "schedules", "update", sid, "--name", "x")
    assert again.exit_code == 5 and again.stderr.startswith("chronos: ")


def test_exit_codes_usage_auth_not_found_conflict(server: ThreadServer) -> None:
    assert chronos(server, "jobs", "list", "--size", "0").exit_code == 2  # a bad flag
    invalid = chronos(server, "jobs", "create", "--name", "x", "--handler", "h", "--timeout", "0")
    assert invalid.exit_code == 2 and "timeout" in invalid.stderr  # the server's 422
    denied = chronos(server, "jobs", "list", key="chrns_" + "Z" * 40)
    assert denied.exit_code == 3 and "refused the API key" in denied.stderr
    missing = chronos(server, "jobs", "get", str(uuid.uuid4()))
    assert missing.exit_code == 4 and missing.stdout == ""
    done = failed_job(server, "cli-c")
    assert chronos(server, "jobs", "cancel", done).exit_code == 5


def test_exit_code_6_rate_limited(tmp_path: Path) -> None:
    with thread_server(tmp_path, rate_limit=RateLimit(1, 60.0)) as limited:
        assert chronos(limited, "jobs", "list").exit_code == 0
        refused = chronos(limited, "jobs", "list")
    assert refused.exit_code == 6 and "HTTP 429" in refused.stderr


def test_exit_code_7_no_server_and_1_not_chronos() -> None:
    gone = CliRunner().invoke(cli, ["jobs", "list", "--server", "http://127.0.0.1:9",
                                    "--retries", "0"])  # fmt: skip
    assert gone.exit_code == 7 and "cannot reach" in gone.stderr

    class NotChronos(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: Any) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), NotChronos)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}"
        odd = CliRunner().invoke(cli, ["jobs", "list", "--server", url, "--api-key", "k"])
    finally:
        other.shutdown()
    assert odd.exit_code == 1 and "is this a Chronos server?" in odd.stderr


def test_help_exit_codes_and_completion() -> None:
    codes = CliRunner().invoke(cli, ["help", "exit-codes"])
    assert [line.split()[0] for line in codes.stdout.splitlines()] == [str(i) for i in range(8)]
    for shell, marker in (
        ("bash", "complete -o"),
        ("zsh", "compdef"),
        ("fish", "complete --no-files --command chronos"),
    ):
        script = CliRunner().invoke(cli, ["completion", shell])
        assert script.exit_code == 0 and marker in script.stdout
    env = {"_CHRONOS_COMPLETE": "bash_complete", "COMP_WORDS": "chronos jo", "COMP_CWORD": "1"}
    done = CliRunner().invoke(cli, [], env=env, prog_name="chronos")
    assert "plain,jobs" in done.stdout


def test_replay_needs_a_job_or_a_status() -> None:
    result = CliRunner().invoke(cli, ["jobs", "replay", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--status" in result.output


def test_handler_limits_set_get_list_clear(server: ThreadServer) -> None:
    made = chronos(server, "handlers", "limits", "set", "cli-limited", "--max-running", "2",
                   "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == api_data(server, "/v1/handlers/cli-limited/limits")
    assert json.loads(made.stdout)["max_running"] == 2

    shown = chronos(server, "handlers", "limits", "get", "cli-limited")
    assert "max running     2" in shown.stdout, shown.output
    listed = chronos(server, "handlers", "limits", "list")
    assert any(line.split()[:2] == ["cli-limited", "2"] for line in listed.stdout.splitlines())

    nothing = chronos(server, "handlers", "limits", "set", "cli-limited")
    assert nothing.exit_code == 2  # usage: neither limit given

    cleared = chronos(server, "handlers", "limits", "clear", "cli-limited")
    assert cleared.exit_code == 0, cleared.output
    assert chronos(server, "handlers", "limits", "get", "cli-limited").exit_code == 4
