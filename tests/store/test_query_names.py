"""Both SQL dialects define the same named queries with the same parameters, and the PostgreSQL
loader turns `:name` into `%(name)s` without touching `::` casts."""

from __future__ import annotations

import re

from chronos_server.store.postgres import pyformat
from chronos_server.store.queries import load_queries

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def test_sqlite_and_postgres_define_the_same_query_names() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sorted(sqlite) == sorted(postgres)


def test_each_query_takes_the_same_parameters_on_both_dialects() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    differ = {
        name: (set(_PARAM.findall(sqlite[name])), set(_PARAM.findall(postgres[name])))
        for name in sqlite
        if set(_PARAM.findall(sqlite[name])) != set(_PARAM.findall(postgres.get(name, "")))
    }
    assert differ == {}


def test_pyformat_converts_parameters_but_not_casts_or_literals() -> None:
    assert pyformat("SELECT :a::text, x::bigint, ':'") == "SELECT %(a)s::text, x::bigint, ':'"
    assert pyformat("WHERE y LIKE '5%' AND z = :z_1") == "WHERE y LIKE '5%%' AND z = %(z_1)s"
