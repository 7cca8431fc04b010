"""The Quart-Trio application: authentication, rate limiting, the error envelope and the routes.

Every ChronosError renders as the spec's envelope; a route that lets anything else escape is a
bug and answers 500 `internal_error` (logged with its traceback).
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from chronos_server.api import routes_jobs, routes_schedules, routes_stats, routes_worker
from chronos_server.api.auth import bearer_key, hash_key
from chronos_server.api.context import Reply, Services, services
from chronos_server.api.openapi import openapi_document
from chronos_server.errors import ChronosError, RateLimited, Unauthorized

log = logging.getLogger("chronos.api")
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/v1/openapi.json"})
MAX_BODY_BYTES = 1024 * 1024


def error_body(exc: ChronosError) -> dict[str, Any]:
    return {
        "success": False,
        "message": exc.message,
        "code": exc.code,
        "errors": [e.to_json() for e in exc.errors],
    }


async def _authenticate() -> None:
    if request.path in PUBLIC_PATHS:
        return
    svc = services()
    key = bearer_key(request.headers.get("Authorization"))
    if key is None:
        raise Unauthorized()
    key_hash = hash_key(key)
    found = await svc.keys.resolve(key_hash, svc.pipeline.store.account_for_key)
    if found is None:
        raise Unauthorized()
    g.account = found
    if svc.limiter is not None:
        decision = svc.limiter.hit(key_hash, trio.current_time())
        g.rate = decision
        if not decision.allowed:
            raise RateLimited(decision.retry_after)


async def _rate_headers(response: Response) -> Response:
    decision = g.get("rate")
    if decision is not None:
        response.headers["X-RateLimit-Limit"] = str(decision.limit)
        response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
        response.headers["X-RateLimit-Reset"] = str(decision.reset_seconds)
    if services().stopping:
        # Shutting down: clients that keep polling (workers, the dashboard) must not hold a
        # keep-alive connection open through the whole grace period.
        response.headers["Connection"] = "close"
    return response


async def _chronos_error(exc: ChronosError) -> Response:
    response = Response(_dumps(error_body(exc)), status=exc.status, content_type="application/json")
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return await _rate_headers(response)


def _dumps(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    codes = {404: "not_found", 405: "not_found", 413: "bad_request", 400: "bad_request"}
    mapped = ChronosError(exc.description or exc.name)
    mapped.status = 404 if status == 405 else status
    mapped.code = codes.get(status, "error")
    mapped.message = "Route not found" if status in (404, 405) else (exc.name or "Error")
    response = await _chronos_error(mapped)
    if status == 413:
        # The rest of the body was never read, so Hypercorn drops the connection after this
        # answer; without saying so, a keep-alive client (httpx) reuses it and its next request
        # hangs until its own timeout.
        response.headers["Connection"] = "close"
    return response


async def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return await _chronos_error(ChronosError())


def create_app(svc: Services) -> QuartTrio:
    app = QuartTrio("chronos_server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 30
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["chronos"] = svc
    app.before_request(_authenticate)
    app.after_request(_rate_headers)
    app.register_error_handler(ChronosError, _chronos_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    for bp in (routes_schedules.bp, routes_jobs.bp, routes_worker.bp, routes_stats.bp):
        app.register_blueprint(bp)

    @app.get("/healthz")
    async def healthz() -> Reply:
        return {"success": True, "message": "ok", "data": {"status": "ok"}}, 200

    @app.get("/readyz")
    async def readyz() -> Reply:
        svc = services()
        if svc.stopping:
            return _not_ready("shutting down")
        try:
            with trio.fail_after(2):
                await svc.pipeline.store.ping()
        except (ChronosError, trio.TooSlowError) as exc:
            return _not_ready(str(exc) or "store unavailable")
        return {"success": True, "message": "ready", "data": {"status": "ready"}}, 200

    @app.get("/v1/openapi.json")
    async def openapi() -> dict[str, Any]:
        return openapi_document()

    return app


def _not_ready(reason: str) -> Reply:
    body = {"success": False, "message": reason, "code": "service_unavailable", "errors": []}
    return body, 503
