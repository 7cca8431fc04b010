"""Signing-secret rotation in the store (G-20 + the overlap extension), on every store.

The store keeps at most one previous secret with the instant it stops being sent; it never reads
a clock: whether the previous secret is still sent is `SigningSecrets.previous_at(now)`, asked by
the sender at send time, and expired ones are cleared by `drop_expired_signing_secrets(now)`.
"""

from __future__ import annotations

import pytest

from chronos_server.store.base import SigningSecrets, Store

from .conftest import T0, Accounts

A, B, C = ("whsec_" + s for s in ("QUFBQQ==", "QkJCQg==", "Q0NDQw=="))
HOUR = 3_600_000


async def secrets_of(store: Store, account_id: str) -> SigningSecrets:
    found = await store.get_signing_secrets(account_id)
    assert found is not None
    return found


async def test_a_new_account_has_no_secret_and_no_rotation(store: Store, acct: Accounts) -> None:
    assert await store.get_signing_secrets(acct.a) == SigningSecrets(None)
    assert await store.get_signing_secrets("no-such-account") is None
    assert await store.rotate_signing_secret("no-such-account", A, previous_until=T0) is None


async def test_rotation_with_an_overlap_keeps_the_previous_secret_until_then(
    store: Store, acct: Accounts
) -> None:
    await store.set_signing_secret(acct.a, A)
    await store.set_signing_secret(acct.b, C)
    rotated = await store.rotate_signing_secret(acct.a, B, previous_until=T0 + HOUR)
    assert rotated == SigningSecrets(B, A, T0 + HOUR)
    assert await secrets_of(store, acct.a) == rotated
    assert await secrets_of(store, acct.b) == SigningSecrets(C)  # the other account untouched
    account = await store.get_account(acct.a)
    assert account is not None and account.signing_secret == B


async def test_rotation_at_once_drops_the_previous_secret(store: Store, acct: Accounts) -> None:
    await store.set_signing_secret(acct.a, A)
    await store.rotate_signing_secret(acct.a, B, previous_until=T0 + HOUR)
    assert await store.rotate_signing_secret(acct.a, C, previous_until=None) == SigningSecrets(C)


async def test_a_second_rotation_in_an_overlap_keeps_only_the_latest_previous_secret(
    store: Store, acct: Accounts
) -> None:
    await store.set_signing_secret(acct.a, A)
    await store.rotate_signing_secret(acct.a, B, previous_until=T0 + HOUR)
    again = await store.rotate_signing_secret(acct.a, C, previous_until=T0 + 2 * HOUR)
    assert again == SigningSecrets(C, B, T0 + 2 * HOUR)


async def test_rotating_an_account_that_had_no_secret_keeps_nothing(
    store: Store, acct: Accounts
) -> None:
    # The columns go together (a CHECK on both stores): no previous secret, no end time.
    rotated = await store.rotate_signing_secret(acct.a, A, previous_until=T0 + HOUR)
    assert rotated == SigningSecrets(A)


@pytest.mark.parametrize(("again", "kept"), [(B, True), (C, False)])
async def test_setting_a_secret_keeps_the_overlap_only_if_it_is_unchanged(
    store: Store, acct: Accounts, again: str, kept: bool
) -> None:
    """A restart with CHRONOS_BOOTSTRAP_SIGNING_SECRET sets the secret again: the same one must
    not end a rotation's overlap, a different one is a switch at once."""
    await store.set_signing_secret(acct.a, A)
    await store.rotate_signing_secret(acct.a, B, previous_until=T0 + HOUR)
    await store.set_signing_secret(acct.a, again)
    expected = SigningSecrets(B, A, T0 + HOUR) if kept else SigningSecrets(C)
    assert await secrets_of(store, acct.a) == expected


async def test_expired_previous_secrets_are_dropped_from_their_end_on(
    store: Store, acct: Accounts
) -> None:
    for account_id, until in ((acct.a, T0 + HOUR), (acct.b, T0 + 2 * HOUR)):
        await store.set_signing_secret(account_id, A)
        await store.rotate_signing_secret(account_id, B, previous_until=until)
    assert await store.drop_expired_signing_secrets(T0 + HOUR - 1) == 0
    assert await store.drop_expired_signing_secrets(T0 + HOUR) == 1
    assert await secrets_of(store, acct.a) == SigningSecrets(B)
    assert await secrets_of(store, acct.b) == SigningSecrets(B, A, T0 + 2 * HOUR)
    assert await store.drop_expired_signing_secrets(T0 + 2 * HOUR) == 1
    assert await store.drop_expired_signing_secrets(T0 + 2 * HOUR) == 0


def test_the_previous_secret_is_sent_up_to_but_not_at_its_end() -> None:
    rotating = SigningSecrets(B, A, T0 + HOUR)
    assert rotating.previous_at(T0) == A and rotating.rotating_until(T0) == T0 + HOUR
    assert rotating.previous_at(T0 + HOUR - 1) == A
    assert rotating.previous_at(T0 + HOUR) is None and rotating.rotating_until(T0 + HOUR) is None
    assert SigningSecrets(B).previous_at(T0) is None
