"""`api_keys.last_used_at` (migration 0010) and the listing `chronos keys list` shows; finding an
account by name without creating it. Both stores."""

from __future__ import annotations

from chronos_server.store.base import ApiKeyInfo, Store

from .conftest import T0

MINUTE = 60_000


async def test_a_key_use_is_written_at_most_once_a_minute(store: Store) -> None:
    acme, _ = await store.ensure_account("acme", T0)
    await store.add_api_key(acme.id, "hash-a", "chrns_aaaaaaaa", T0)
    await store.add_api_key(acme.id, "hash-b", "chrns_bbbbbbbb", T0 + 1)
    assert [k.last_used_at for k in await store.list_api_keys()] == [None, None]

    await store.touch_api_key("hash-a", T0 + 10)
    await store.touch_api_key("hash-a", T0 + 10 + MINUTE - 1)  # within the minute: no write
    listed = await store.list_api_keys()
    assert listed == [
        ApiKeyInfo("chrns_aaaaaaaa", "acme", T0, T0 + 10, None),
        ApiKeyInfo("chrns_bbbbbbbb", "acme", T0 + 1, None, None),
    ]
    await store.touch_api_key("hash-a", T0 + 10 + MINUTE)
    assert (await store.list_api_keys())[0].last_used_at == T0 + 10 + MINUTE
    await store.touch_api_key("unknown", T0)  # nothing to write, no error


async def test_keys_list_names_accounts_and_revocations(store: Store) -> None:
    zed, _ = await store.ensure_account("zed", T0)
    acme, _ = await store.ensure_account("acme", T0)
    await store.add_api_key(zed.id, "h1", "chrns_zzzzzzzz", T0)
    await store.add_api_key(acme.id, "h2", "chrns_cccccccc", T0 + 5)
    await store.revoke_api_key("chrns_zzzzzzzz", T0 + 9)
    listed = await store.list_api_keys()
    assert [(k.account, k.prefix, k.revoked_at) for k in listed] == [
        ("acme", "chrns_cccccccc", None),
        ("zed", "chrns_zzzzzzzz", T0 + 9),
    ]


async def test_an_account_is_found_by_name_and_never_created(store: Store) -> None:
    assert await store.get_account_by_name("acme") is None
    assert await store.count_accounts() == 0
    made, _ = await store.ensure_account("acme", T0)
    assert await store.get_account_by_name("acme") == made
