"""Lists that do not count the world: the SQL behind `GET /v1/jobs`, `/v1/executions` and
`/v1/schedules`, written out for exactly the filters a request gives.

Each list is newest first (`created_at`/`started_at` DESC, `id` DESC). The SQL names only the
filters present, so each shape plans onto the index made for it (migration 0009; a PostgreSQL
test EXPLAINs every combination): an optional filter written `(:x IS NULL OR col = :x)` would,
once PostgreSQL caches a generic plan, use no index for it. Several statuses are one ordered
index range each, merged (`UNION ALL` of per-status `LIMIT`s), never a sort of every match.

Keyset paging: `after` = the (time, id) of the last row seen; the next page is the rows after
it in the order, one index range however deep. Totals are counted up to `EXACT_TOTAL_UP_TO`
rows; past that the store answers an estimate (flagged) or, for jobs filtered by status and
handler only, the exact figure from the kept counts (`job_counts`).

The shapes are finite (tables x filter sets x number of statuses), so a store keeps each
query's text under its `name`, as it keeps the named queries of its SQL files.
"""

from __future__ import annotations

from dataclasses import dataclass

# A list this long or shorter gets an exact `total`; a longer one an estimate.
EXACT_TOTAL_UP_TO = 1_000


@dataclass(frozen=True)
class Table:
    name: str
    time: str  # the sort column, newest first; ties broken by id


JOBS = Table("jobs", "created_at")
EXECUTIONS = Table("executions", "started_at")
SCHEDULES = Table("schedules", "created_at")


@dataclass(frozen=True)
class ListQuery:
    """One list request: `equal` = (column, value) pairs, the account's first; `statuses` = the
    status values any of which a row may have (empty: any); `since` = the sort column's lower
    bound; `after` = the (time, id) keyset cursor."""

    table: Table
    equal: tuple[tuple[str, str], ...]
    statuses: tuple[str, ...] = ()
    since: int | None = None
    after: tuple[int, str] | None = None

    def _where(self, keyset: bool) -> tuple[list[str], dict[str, object]]:
        clauses = [f"{column} = :{column}" for column, _ in self.equal]
        params: dict[str, object] = dict(self.equal)
        time = self.table.time
        if self.since is not None:
            clauses.append(f"{time} >= :since")
            params["since"] = self.since
        if keyset and self.after is not None:
            clauses.append(f"{time} <= :after_t AND ({time} < :after_t OR id < :after_id)")
            params["after_t"], params["after_id"] = self.after
        params |= {f"s{i}": status for i, status in enumerate(self.statuses)}
        return clauses, params

    def _shape(self, kind: str) -> str:
        columns = "+".join(column for column, _ in self.equal)
        return (
            f"{kind}:{self.table.name}:{columns}:s{len(self.statuses)}"
            f":{int(self.since is not None)}:{int(self.after is not None)}"
        )

    def _ranges(self, clauses: list[str], columns: str, order: str, limit: str) -> str:
        """One ordered index range per status, each cut at `limit`, as one UNION ALL (or the
        one range when there is at most one status)."""
        statuses = [[f"status = :s{i}"] for i in range(len(self.statuses))] or [[]]
        ranges = [
            f"SELECT {columns} FROM {self.table.name} WHERE "
            + " AND ".join([*clauses, *status])
            + f" {order} LIMIT {limit}"
            for status in statuses
        ]
        if len(ranges) == 1:
            return ranges[0]
        return "\nUNION ALL\n".join(f"SELECT * FROM ({r}) AS b{i}" for i, r in enumerate(ranges))

    def page_sql(self) -> tuple[str, str, dict[str, object]]:
        """(name, SQL, params) of one page; the caller adds `limit` and `offset`."""
        clauses, params = self._where(keyset=True)
        order = f"ORDER BY {self.table.time} DESC, id DESC"
        if len(self.statuses) <= 1:
            sql = self._ranges(clauses, "*", order, ":limit OFFSET :offset")
            return self._shape("page"), sql, params
        union = self._ranges(clauses, "*", order, ":depth")
        sql = f"SELECT * FROM (\n{union}\n) AS merged {order} LIMIT :limit OFFSET :offset"
        return self._shape("page"), sql, params

    def count_sql(self) -> tuple[str, str, dict[str, object]]:
        """(name, SQL, params) counting the matching rows up to `:cap`: the first `:cap` rows of
        the page's own ordered index range (one range per status), never a scan that stops
        when it has found `:cap` matches — PostgreSQL would pick a sequential scan for that,
        cheap by its estimate, and read the whole table when the matches lie at its end."""
        clauses, params = self._where(keyset=False)
        time = self.table.time
        ranges = self._ranges(clauses, time, f"ORDER BY {time} DESC", ":cap")
        inner = (
            ranges if len(self.statuses) <= 1 else f"SELECT 1 FROM ({ranges}) AS merged LIMIT :cap"
        )
        return self._shape("count"), f"SELECT count(*) AS n FROM ({inner}) AS c", params

    def estimate_sql(self) -> tuple[str, str, dict[str, object]]:
        """(name, SQL, params) of PostgreSQL's plan for all matching rows (its `Plan Rows`)."""
        clauses, params = self._where(keyset=False)
        clauses.extend(self._status_in())
        sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self.table.name} WHERE {' AND '.join(clauses)}"
        return self._shape("estimate"), sql, params

    def counts_sql(self) -> tuple[str, str, dict[str, object]] | None:
        """(name, SQL, params) of the exact total from the kept job counts, when the filters
        are ones the counts have (account, handler, status); else None."""
        columns = {column for column, _ in self.equal}
        if (
            self.table is not JOBS
            or self.since is not None
            or not columns
            <= {
                "account_id",
                "handler",
            }
        ):
            return None
        clauses, params = self._where(keyset=False)
        clauses.extend(self._status_in())
        where = " AND ".join(clauses)
        sql = (
            "SELECT coalesce(sum(n), 0) AS n FROM ("
            "SELECT account_id, handler, status, n FROM job_counts"
            " UNION ALL SELECT account_id, handler, status, delta AS n FROM job_count_deltas"
            f") AS counted WHERE {where}"
        )
        return self._shape("counts"), sql, params

    def _status_in(self) -> list[str]:
        if not self.statuses:
            return []
        return [f"status IN ({', '.join(f':s{i}' for i in range(len(self.statuses)))})"]
