"""`GET /v1/account` (extension): the caller's account, and whether a signing-secret rotation is
in progress and until when (for the dashboard).

The secrets themselves never leave the server through the API: they are shown by the admin CLI
(`chronos secrets show`) only. Whether the previous secret is still sent is decided with the
pipeline's clock, as the push sender decides it at send time.
"""

from __future__ import annotations

from chronos_server.api.context import Call, Reply, ok
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.timefmt import iso


async def account(call: Call) -> Reply:
    pipeline = call.pipeline
    found = await pipeline.store.get_signing_secrets(call.account.id)
    until = found.rotating_until(pipeline.clock.now_ms()) if found else None
    data = {
        "id": call.account.id,
        "name": call.account.name,
        "timezone": call.account.timezone,
        "created_at": iso(call.account.created_at),
        "signing_secret": {"rotating": until is not None, "previous_sent_until": iso(until)},
    }
    return ok(data, "Account")


ROUTES: Routes = [("GET", "/v1/account", Endpoint(account))]
