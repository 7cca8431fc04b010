"""`chronos secrets show|rotate [--overlap D]` against a SQLite file, with a clock the test sets.

stdout stays script-friendly: `show` prints the current secret alone, `rotate` ends with the new
secret; what a rotation in progress means for people goes to stderr (`show`) or the text above
the secret (`rotate`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from chronos_server import cli
from chronos_server.store.base import SigningSecrets
from chronos_server.store.open import open_store

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00.000Z
HOUR = 3_600_000
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


class SetClock:
    now = T0

    def now_ms(self) -> int:
        return SetClock.now


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database with the default account, as `chronos serve` leaves it."""
    monkeypatch.setattr(cli, "SystemClock", SetClock)
    SetClock.now = T0
    url = f"sqlite:///{tmp_path / 'chronos.db'}"

    async def bootstrap() -> None:
        async with open_store(url) as store:
            await store.ensure_account("default", T0)

    trio.run(bootstrap)
    yield url


def run(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[list[str], str]:
    """stdout's lines, and stderr without the line that names the database."""
    cli.main(["secrets", *argv, "--database-url", db])
    out, err = capsys.readouterr()
    said, _, rest = err.partition("\n")
    assert said == f"chronos: database {db}", err
    return out.splitlines(), rest


def stored(db: str) -> SigningSecrets:
    async def read() -> SigningSecrets:
        async with open_store(db) as store:
            account, _ = await store.ensure_account("default", T0)
            found = await store.get_signing_secrets(account.id)
            assert found is not None
            return found

    return trio.run(read)


def test_rotate_keeps_the_previous_secret_for_24_hours_by_default(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    [first], _ = run(capsys, db, "show")
    out, err = run(capsys, db, "rotate")
    new = out[-1]
    assert SECRET.fullmatch(new) and new != first and err == ""
    assert out[:-1] == [
        "Rotated the signing secret of account 'default'. Until 2027-01-16T08:00:00.000Z",
        "(in 24h 00m) deliveries carry signatures by both the previous",
        "secret and the new one, then by the new one only. New secret:",
    ]
    assert stored(db) == SigningSecrets(new, first, T0 + 24 * HOUR)


def test_show_prints_the_current_secret_alone_and_the_rotation_on_stderr(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    [old], _ = run(capsys, db, "show")
    new = run(capsys, db, "rotate", "--overlap", "90m")[0][-1]
    SetClock.now = T0 + 30 * 60_000
    out, err = run(capsys, db, "show")
    assert out == [new]
    assert err.splitlines() == [
        "Rotation in progress for account 'default': the previous secret still signs deliveries "
        "next to this one until 2027-01-15T09:30:00.000Z (in 1h 00m):",
        old,
    ]


def test_after_the_overlap_show_says_nothing_more_and_clears_the_old_secret(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, db, "show")
    new = run(capsys, db, "rotate", "--overlap", "2d")[0][-1]
    SetClock.now = T0 + 48 * HOUR
    assert run(capsys, db, "show") == ([new], "")
    assert stored(db) == SigningSecrets(new)  # dropped lazily, by `show`


def test_overlap_0_switches_at_once_as_before(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, db, "show")
    out, _ = run(capsys, db, "rotate", "--overlap", "0")
    assert out[:-1] == [
        "Rotated the signing secret of account 'default'; deliveries sent",
        "from now on are signed with:",
    ]
    assert stored(db) == SigningSecrets(out[-1])
    assert run(capsys, db, "show") == ([out[-1]], "")


def test_rotating_again_during_an_overlap_says_the_oldest_secret_is_dropped(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, db, "show")
    middle = run(capsys, db, "rotate", "--overlap", "1h")[0][-1]
    SetClock.now = T0 + 60_000
    out, err = run(capsys, db, "rotate", "--overlap", "30s")
    assert err == (
        "chronos: the secret before the last rotation was to be sent until "
        "2027-01-15T09:00:00.000Z; it is no longer sent\n"
    )
    assert stored(db) == SigningSecrets(out[-1], middle, T0 + 90_000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rotate", "--overlap", "24"], "'24' is not a duration"),
        (["rotate", "--overlap", "1.5h"], "'1.5h' is not a duration"),
        (["rotate", "--overlap=-1h"], "'-1h' is not a duration"),
        (["rotate", "--overlap", "31d"], "'31d' is longer than the maximum, 30d"),
        (["show", "--overlap", "1h"], "--overlap applies to `secrets rotate` only"),
    ],
)
def test_a_bad_overlap_is_refused_with_exit_2(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["secrets", *argv, "--database-url", db])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "ms"), [("0", 0), ("45s", 45_000), ("30m", 1_800_000), ("24h", 86_400_000),
                     ("7d", 604_800_000), ("30d", 2_592_000_000)],
)  # fmt: skip
def test_overlap_units(text: str, ms: int) -> None:
    assert cli.parse_overlap(text) == ms
