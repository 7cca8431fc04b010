"""The HTTP API: Quart-Trio app, request schemas, serialisation, auth and the route blueprints."""
