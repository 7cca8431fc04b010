"""Storage: the `Store` protocol, row mapping, migrations and the per-dialect implementations."""
