"""`Endpoint`: a route function with what it accepts (query names, whether it needs a key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chronos_server.api.context import Call, Reply


@dataclass(frozen=True)
class Endpoint:
    fn: Callable[[Call], Awaitable[Reply]]
    query: frozenset[str] = frozenset()
    public: bool = False
    # Sent with each of its answers that is not an error.
    headers: tuple[tuple[str, str], ...] = ()


Routes = list[tuple[str, str, Endpoint]]
