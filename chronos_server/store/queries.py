"""Loads the named SQL queries of one dialect (`-- name: x` blocks in store/sql/<dialect>/).

`queries.sql` holds the shared query set (the same names on every dialect, run by
`transactions/`); a dialect may keep its own extra queries in another file of its folder.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def load_queries(dialect: str, filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files("chronos_server.store").joinpath(f"sql/{dialect}/{filename}").read_text()
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"duplicate query name {name!r} in {dialect}")
        queries[name] = body.strip()
    return queries


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every `NNNN_name.sql` file of the dialect, in order."""
    folder = resources.files("chronos_server.store").joinpath(f"sql/{dialect}")
    found = []
    for entry in folder.iterdir():
        m = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)
