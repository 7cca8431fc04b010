"""The `Tx` protocol every transaction is written over, and `new_id`; shared by the modules."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from chronos_server.store.rows import Row


class Tx(Protocol):
    def one(self, query: str, **params: Any) -> Row | None: ...
    def all(self, query: str, **params: Any) -> list[Row]: ...
    def run(self, query: str, **params: Any) -> int: ...


def new_id() -> str:
    return str(uuid.uuid4())
