"""The metrics listener (`--metrics-port`): `GET /metrics` in the Prometheus text format, on a
listener of its own beside the API's (same host), served by the server's own HTTP/1.1 loop in
the root nursery, like the API; prometheus-client's thread server is not used (no bare
threads). No API key: bind it where only Prometheus can reach it, as is usual for `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from chronos_server.store.base import Store
from chronos_server.telemetry.metrics import Metrics
from chronos_server.web.messages import Request, Response
from chronos_server.web.server import Limits

# Prometheus keeps one connection per target; a few more for people with curl.
METRICS_LIMITS = Limits(max_connections=16, overflow_connections=4)


class MetricsApp:
    def __init__(self, metrics: Metrics, store: Store) -> None:
        self._metrics = metrics
        self._store = store

    async def handle(self, request: Request) -> Response:
        if request.path not in ("/metrics", "/metrics/"):
            return self.error(404, "not_found", "Only /metrics is served here")
        if request.method not in ("GET", "HEAD"):
            response = self.error(405, "method_not_allowed", "Use GET")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        await self._metrics.refresh_queue(self._store)
        body = self._metrics.render()
        return Response(200, b"" if request.method == "HEAD" else body, [], CONTENT_TYPE_LATEST)

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, f"{code}: {message}\n".encode(), [], "text/plain; charset=utf-8")
