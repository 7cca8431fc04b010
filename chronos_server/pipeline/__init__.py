"""The pipeline's coordination, apart from the HTTP layer and the loops that drive it:

- `services`: `Pipeline`, what the loops, the routes and the push sender share — store, clock,
  randomness, wake-ups, the leases this process handed out, and the one stop (`Shutdown`);
- `signals`: in-process wake-ups — the coalescing `Nudge` and the `ClaimBoard` of parked claims;
- `claims`: the claim protocol — park, try, undo a claim whose caller vanished, pass a wake-up on;
- `outcomes`: recording workers' reports — the lease settled, admission woken for a retry;
- `creates` and `group_commit`: creating jobs — one at a time, written in groups with the other
  creates waiting (`JobWriter`), or many in one transaction.

Nothing here knows HTTP; the routes (`api/routes_worker.py`) and, later, other transports call
these functions, and tests drive them without a server.
"""
