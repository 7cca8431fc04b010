"""`chronos keys|secrets|migrate` cannot surprise: they read the database URL as `serve` does
(flag, then CHRONOS_DATABASE_URL), say which database they use, never create a database
(`migrate` aside) or an account (`keys create --create-account` aside): exit 4 and a message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chronos_cli.main import main
from tests.tui.server import thread_server

KEY = re.compile(r"chrns_[A-Za-z0-9]{20,}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHRONOS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)


def chronos(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_secrets_show_without_a_database_refuses_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = chronos(capsys, "secrets", "show", "--account", "default")
    assert code == 4 and out == ""
    assert f"chronos: database sqlite:///{tmp_path / 'chronos.db'}" in err
    assert "no database at" in err and "chronos migrate" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv", [["keys", "create"], ["keys", "list"], ["keys", "revoke", "chrns_abcdefgh"],
             ["secrets", "rotate"]],
)  # fmt: skip
def test_no_admin_command_but_migrate_creates_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = chronos(capsys, *argv, "--database-url", "sqlite:///elsewhere.db")
    assert code == 4 and "no database at" in err
    assert not (tmp_path / "elsewhere.db").exists()


def test_migrate_creates_then_accounts_are_created_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHRONOS_DATABASE_URL", "sqlite:///from-env.db")  # as `serve` reads it
    assert chronos(capsys, "migrate")[0] == 0
    assert (tmp_path / "from-env.db").exists()

    code, out, err = chronos(capsys, "keys", "create", "--account", "acme")
    assert code == 4 and out == ""
    assert "no account named 'acme'" in err and "--create-account" in err
    code, _, err = chronos(capsys, "secrets", "show", "--account", "acme")
    assert code == 4 and "no account named 'acme'" in err

    code, out, err = chronos(capsys, "keys", "create", "--account", "acme", "--create-account")
    assert code == 0 and KEY.fullmatch(out.splitlines()[-1])
    assert f"chronos: database sqlite:///{tmp_path / 'from-env.db'}" in err
    code, out, _ = chronos(capsys, "secrets", "show", "--account", "acme")
    assert code == 0 and out.startswith("whsec_")
    code, out, _ = chronos(capsys, "keys", "create", "--account", "acme")  # exists now
    assert code == 0


def test_keys_list_shows_prefix_account_creation_and_last_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with thread_server(tmp_path) as server:
        db = f"sqlite:///{tmp_path / 'chronos.db'}"
        _, out, _ = chronos(capsys, "keys", "create", "--account", "default", "--database-url", db)
        fresh = out.splitlines()[-1]
        with server.client() as http:  # uses the bootstrap key, not `fresh`
            assert http.get("/v1/jobs").status_code == 200
            assert http.get("/v1/jobs").status_code == 200
        code, out, _ = chronos(capsys, "keys", "list", "--database-url", db)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["PREFIX", "ACCOUNT", "CREATED", "LAST", "USED", "REVOKED"]
    by_prefix = {row.split()[0]: row.split() for row in rows}
    bootstrap = by_prefix[server.api_key[:14]]
    assert bootstrap[1] == "default" and bootstrap[3].endswith("Z")  # used: a time
    created = by_prefix[fresh[:14]]
    assert created[1] == "default" and created[3] == "never"
