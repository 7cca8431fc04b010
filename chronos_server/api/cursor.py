"""Keyset cursors for the lists (`cursor` in, `meta.paging.next_cursor` out): opaque to
clients, here the list's kind and the (sort time, id) of the last row a page held, as
unpadded base64url JSON. A cursor of another list, or not one at all, is a 422 on `cursor`."""

from __future__ import annotations

import base64
import binascii
import json

from chronos_server.errors import invalid

JOBS = "j"
EXECUTIONS = "e"
SCHEDULES = "s"


def encode_cursor(kind: str, time_ms: int, row_id: str) -> str:
    raw = json.dumps([kind, time_ms, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, text: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        found, time_ms, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise invalid("cursor", "is not a cursor this server handed out") from None
    if found != kind or not isinstance(time_ms, int) or not isinstance(row_id, str):
        raise invalid("cursor", "is not a cursor of this list") from None
    return time_ms, row_id
